package Test::Nginx::Util;

# Small stand-in for the CPAN Test::Nginx::Util (openresty/test-nginx):
# nginx.conf generation, nginx process management, error log access and the
# per-block driver.  Used only when the real module is not installed, so the
# names, defaults and test messages follow the real module.

use strict;
use warnings;
use base 'Exporter';
use POSIX qw(SIGQUIT SIGKILL);
use File::Spec ();
use File::Path qw(remove_tree);
use List::Util qw(shuffle min);
use Time::HiRes qw(sleep time);
use Test::More ();

our $VERSION = '0.29';

our @EXPORT = qw(
    env_to_nginx is_str check_accum_error_log is_running no_long_string
    $ServerAddr server_addr $ServerName server_name parse_time sleep_time
    bail_out add_cleanup_handler error_log_data trim parse_headers
    run_tests run_test get_pid_from_pidfile $ServerPortForClient $ServerPort
    $NginxVersion $PidFile $ServRoot $ConfFile $RepeatEach
    add_block_preprocessor timeout worker_connections workers master_on
    master_off config_preamble repeat_each master_process_enabled log_level
    no_shuffle no_root_location html_dir server_root server_port
    server_port_for_client
);

our $NginxBinary = $ENV{TEST_NGINX_BINARY}
                   || (can_run('nginx') ? 'nginx' : '/usr/sbin/nginx');
our $ServerPort  = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
our $ServerPortForClient = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort;
our $LogLevel    = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcessEnabled = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $Timeout     = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $NoShuffle   = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $TestNginxSleep = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $ForceRestartOnTest = $ENV{TEST_NGINX_FORCE_RESTART_ON_TEST} // 1;
our $CheckAccumErrLog = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our ($ServerAddr, $ServerName) = ('127.0.0.1', 'localhost');
our ($RepeatEach, $Workers, $WorkerConnections, $NoRootLocation) = (1, 1, 64, 0);
our ($ConfigPreamble, $NoLongString) = ('', undef);
our ($RunTestHelper, $NginxVersion, $NginxConfigureArgs, $PrevConfig);
our (@EnvToNginx, @BlockPreprocessors, @CleanupHandlers);
our ($ErrLogFilePos, $ErrLogEnd) = (0, 0);
our $MainPid = $$;    # END must not act in forked children

our $ServRoot = $ENV{TEST_NGINX_SERVROOT} || File::Spec->rel2abs('t/servroot');
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;
our ($LogDir, $HtmlDir, $ConfDir) = map { "$ServRoot/$_" } qw(logs html conf);
our ($ErrLogFile, $AccLogFile, $PidFile) = map { "$LogDir/$_" } qw(error.log access.log nginx.pid);
our $ConfFile = "$ConfDir/nginx.conf";

# ---- settings, called before run_tests() (same shapes as the real ones)
sub no_long_string ()        { $NoLongString = 1 }
sub no_shuffle ()            { $NoShuffle = 1 }
sub no_root_location ()      { $NoRootLocation = 1 }
sub check_accum_error_log () { $CheckAccumErrLog = 1 }
sub master_on ()             { $MasterProcessEnabled = 'on' }
sub master_off ()            { $MasterProcessEnabled = 'off' }
sub config_preamble ($)      { $ConfigPreamble = shift }
sub add_block_preprocessor (&) { unshift @BlockPreprocessors, shift }
sub add_cleanup_handler ($)  { unshift @CleanupHandlers, shift }
sub html_dir ()              { $HtmlDir }
sub server_root ()           { $ServRoot }
sub sleep_time               { $TestNginxSleep }
sub server_addr (@)          { @_ ? ($ServerAddr = shift) : $ServerAddr }
sub server_name (@)          { @_ ? ($ServerName = shift) : $ServerName }
sub timeout (@)              { @_ ? ($Timeout = shift) : $Timeout }
sub server_port (@)          { @_ ? ($ServerPort = shift) : $ServerPort }
sub server_port_for_client (@) { @_ ? ($ServerPortForClient = shift) : $ServerPortForClient }
sub worker_connections (@)   { @_ ? ($WorkerConnections = shift) : $WorkerConnections }
sub workers (@)              { @_ ? ($Workers = shift) : $Workers }
sub log_level (@)            { @_ ? ($LogLevel = shift) : $LogLevel }
sub repeat_each (@)          { $RepeatEach = shift if @_; $RepeatEach }
sub master_process_enabled (@) {
    @_ ? ($MasterProcessEnabled = shift() ? 'on' : 'off') : $MasterProcessEnabled;
}

sub env_to_nginx (@) {
    die "env_to_nginx: no arguments specified" unless @_;
    for my $v (@_) {
        die "env_to_nginx: bad argument value: $v\n" if $v !~ /^[A-Za-z_]/ || $v =~ /\n/;
        push @EnvToNginx, $v;
    }
}

sub is_str (@) {
    my ($got, $expected, $desc) = @_;
    return Test::More::like($got, $expected, $desc) if ref $expected eq 'Regexp';
    return Test::More::is($got, $expected, $desc);
}

# ---- helpers
sub parse_time ($) {    # "1.5", "2s", "50ms" -> seconds
    my $tm = shift;
    if (defined $tm) {
        if ($tm =~ s/([^_a-zA-Z])ms$/$1/) { $tm /= 1000 } else { $tm =~ s/([^_a-zA-Z])s$/$1/ }
    }
    return $tm;
}

sub trim ($) {
    my $s = shift;
    return undef unless defined $s;
    $s =~ s/^\s+|\s+$//g;
    $s =~ s/\n/ /gs;
    $s =~ s/\s{2,}/ /gs;
    $s;
}

# "Name: value" lines; "!Name" means the header must be absent (undef value)
sub parse_headers ($) {
    my %headers;
    for (split /\n/, shift // '') {
        s/^\s+|\s+$//g;
        next if $_ eq '';
        if (s/^!\s*//) { $headers{$_} = undef; next }
        my ($key, $val) = split /\s*:\s*/, $_, 2;
        $headers{$key} = $val;
    }
    return \%headers;
}

sub can_run {
    my $cmd = shift;
    return (-f $cmd && -x $cmd ? $cmd : undef) if $cmd =~ m{/};
    for my $dir (grep { $_ ne '' } split(/:/, $ENV{PATH} // ''), '.') {
        return "$dir/$cmd" if -f "$dir/$cmd" && -x "$dir/$cmd";
    }
    return undef;
}

sub cleanup () { $_->() for @CleanupHandlers }

sub bail_out (@) {
    cleanup();
    Test::More::BAIL_OUT(@_);
}

# kill(0) also succeeds on zombies (nginx daemons are not our children and
# may stay zombies in containers without a reaping init), so check /proc.
sub is_running ($) {
    my $pid = shift;
    return 0 unless $pid && kill 0, $pid;
    open my $in, '<', "/proc/$pid/stat" or return 1;
    return (<$in> // '') =~ /^\d+ \(.*\) Z/s ? 0 : 1;
}

sub get_pid_from_pidfile ($) {
    my $name = shift;
    open my $in, '<', $PidFile
        or bail_out("$name - Failed to open the pid file $PidFile for reading: $!");
    my $pid = do { local $/; <$in> } // '';
    chomp $pid;
    return $pid;
}

# Stop the nginx of the pid file: QUIT, wait up to timeout(), then KILL.
# A stale pid file must not make us signal an unrelated process.
sub stop_nginx ($) {
    my $name = shift;
    return unless -f $PidFile;
    my $pid = get_pid_from_pidfile($name);
    my $ours = !-d '/proc/self';
    if ($pid =~ /^\d+$/ && open my $in, '<', "/proc/$pid/cmdline") {
        my $cmdline = do { local $/; <$in> } // '';
        $ours = $cmdline =~ /nginx/ || index($cmdline, $ServRoot) >= 0;
    }
    if ($pid =~ /^\d+$/ && $ours && is_running($pid)) {
        kill SIGQUIT, $pid;
        my $deadline = time + timeout();
        sleep 0.01 while is_running($pid) && time < $deadline;
        if (is_running($pid)) {
            warn "$name - timeout when waiting for the process $pid to exit\n";
            kill SIGKILL, $pid;
            $deadline = time + 3;
            sleep 0.01 while is_running($pid) && time < $deadline;
        }
    }
    unlink $PidFile;
}

# ---- error.log: each read returns the lines written since the previous one
# (within the current block), unless check_accum_error_log() was called.
sub read_error_log ($) {
    my $from = shift;
    open my $in, '<', $ErrLogFile or return [];
    seek $in, $from, 0;
    my @lines = <$in>;
    $ErrLogEnd = tell $in;
    $ErrLogFilePos = $ErrLogEnd unless $CheckAccumErrLog;
    return \@lines;
}

sub error_log_data () {
    sleep $TestNginxSleep * 3;    # log-phase lines come after the response
    return read_error_log($CheckAccumErrLog ? 0 : $ErrLogFilePos);
}

sub error_log_more () { read_error_log($ErrLogEnd) }    # for polling

# ---- nginx.conf
sub get_canon_version (@) { sprintf "%d.%03d%03d", $_[0], $_[1], $_[2] }

sub get_nginx_version () {
    my $out = `$NginxBinary -V 2>&1`;
    bail_out("Failed to get the version of the Nginx in PATH: " . ($out // ''))
        if !defined $out || $? != 0;
    $NginxConfigureArgs = $out =~ /configure arguments:(.*)/ ? $1 : '';
    return get_canon_version($1, $2, $3) if $out =~ m{\w+/(\d+)\.(\d+)\.(\d+)};
    bail_out("Failed to parse the output of \"nginx -V\": $out\n");
}

sub setup_server_root () {
    if (-d $ServRoot) {
        # remove only what we create: a mis-set TEST_NGINX_SERVROOT must not
        # wipe real data
        remove_tree($ConfDir, $HtmlDir, $LogDir, glob("$ServRoot/*_temp"));
        rmdir $ServRoot or bail_out("Can't remove $ServRoot (not empty?): $!");
    }
    for my $dir ($ServRoot, $LogDir, $HtmlDir, $ConfDir) {
        mkdir $dir or bail_out("Failed to do mkdir $dir\n");
    }
    open my $out, '>', "$HtmlDir/index.html" or bail_out("Can't write $HtmlDir/index.html: $!\n");
    print $out '<html><head><title>It works!</title></head><body>It works!</body></html>';
    close $out;
}

# $TEST_NGINX_FOO in config sections -> $ENV{TEST_NGINX_FOO}
sub expand_env_in_text ($$) {
    my ($text, $name) = @_;
    return undef unless defined $text;
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        bail_out("$name - No environment $1 defined.\n") unless defined $ENV{$1};
        $ENV{$1};
    }eg;
    return $text;
}

sub write_config_file ($$) {
    my ($block, $config) = @_;
    my $name = $block->name;
    my $http_config = expand_env_in_text($block->http_config, $name) // '';
    my $main_config = $block->main_config // '';
    if (my $mods = $ENV{TEST_NGINX_LOAD_MODULES}) {    # appended, as the real one does
        $main_config .= join ' ', map { "load_module $_;" } grep { $_ } split /\s+/, $mods;
    }
    $main_config = expand_env_in_text($main_config, $name);
    my $post_main_config = expand_env_in_text($block->post_main_config, $name) // '';
    my $server_name = $block->server_name // $ServerName;

    # Temp files go under the server root (the compiled-in paths may not be
    # writable), unless the test sets them or the module is compiled out.
    my $temp_paths = '';
    for my $m (qw(client_body proxy fastcgi uwsgi scgi)) {
        next if $http_config =~ /\b${m}_temp_path\b/
            || ($m ne 'client_body' && ($NginxConfigureArgs // '') =~ /--without-http_${m}_module/);
        $temp_paths .= "    ${m}_temp_path $ServRoot/${m}_temp;\n";
    }
    my $env = join '', map { /\s/ ? "env '$_';\n" : "env $_;\n" } @EnvToNginx;
    my $root_location = $NoRootLocation ? '' : <<_EOC_;
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_
    my $user = $ENV{TEST_NGINX_WORKER_USER} ? "user $ENV{TEST_NGINX_WORKER_USER};\n"
             : $> == 0 ? "user root;\n" : '';    # as root, like the real one

    open my $out, '>', $ConfFile or bail_out("Can't open $ConfFile for writing: $!\n");
    print $out <<_EOC_;
worker_processes  $Workers;
daemon on;
master_process $MasterProcessEnabled;
error_log $ErrLogFile $LogLevel;
pid       $PidFile;
$env
$main_config

http {
    access_log $AccLogFile;

    default_type text/plain;
    keepalive_timeout  68;
$temp_paths
$http_config

    server {
        listen          $ServerPort;
        server_name     '$server_name';

        client_max_body_size 30M;

$ConfigPreamble
$config

$root_location    }
}

$post_main_config

events {
    accept_mutex off;

    worker_connections  $WorkerConnections;
}
$user
_EOC_
    close $out;
}

# ---- starting nginx
sub port_listening ($) {    # LISTEN state in /proc/net/tcp{,6}
    my $port = shift;
    my $have_proc;
    for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $in, '<', $f or next;
        $have_proc = 1;
        while (<$in>) {
            return 1 if /^\s*\d+:\s+[0-9A-F]+:([0-9A-F]{4})\s+\S+\s+0A\s/ && hex($1) == $port;
        }
    }
    return !$have_proc;    # without /proc, rely on the pid file alone
}

sub start_nginx ($) {
    my $name = shift;
    bail_out("$name - Cannot find the nginx executable in the PATH environment")
        unless can_run($NginxBinary);
    my $cmd = "$NginxBinary -p $ServRoot/ -c $ConfFile > /dev/null";
    my ($tries, $waited) = (0, 0);
    while (system($cmd) != 0) {
        my $status = $?;    # maybe the port is still held by a dying nginx
        bail_out("$name - Cannot start nginx using command \"$cmd\" (status code $status).")
            if $waited >= 10;
        my $delay = min(0.1 * ++$tries, 1);
        sleep $delay;
        $waited += $delay;
    }
    # With "daemon on" the sockets are bound before the launcher exits; still
    # poll for the pid file and the LISTEN socket.  No probe connections:
    # they would show up in error.log.
    my ($deadline, $step) = (time + 10, 0.002);
    while (time < $deadline) {
        return if -s $PidFile && is_running(get_pid_from_pidfile($name))
                  && port_listening($ServerPort);
        sleep $step;
        $step = min($step * 2, 0.05);
    }
    warn "WARNING: $name - nginx did not become ready within 10 seconds\n";
}

# "--- skip_nginx: N: <op> x.y.z[: reason]" skips N tests of the block
sub skip_nginx_spec ($) {
    my $block = shift;
    my $spec = $block->skip_nginx // return;
    $spec =~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)(?:\s*:\s*(.*))?\s*$/
        or bail_out($block->name . " - Invalid --- skip_nginx spec: $spec");
    my ($n, $op, $reason) = ($1, $2, $6 || "nginx version $2 $3.$4.$5");
    my $ver = get_canon_version($3, $4, $5);
    return eval "$NginxVersion $op $ver" ? ($n, $reason) : ();
}

# ---- the per-block driver
sub run_test ($) {
    my $block = shift;
    return if defined $block->SKIP;
    my $name = $block->name;
    my $config = expand_env_in_text($block->config, $name);
    local $LogLevel = $LogLevel;
    $LogLevel = $block->log_level if $block->log_level;
    my ($tests_to_skip, $skip_reason) = skip_nginx_spec($block);

    if (!defined $config) {    # no --- config: keep the running nginx
        bail_out("$name - No '--- config' section specified and could not get previous one. Use TEST_NGINX_NO_NGINX_MANAGER ?")
            unless defined $PrevConfig;
    } elsif (!defined $tests_to_skip
             && ($ForceRestartOnTest || !defined $PrevConfig || $config ne $PrevConfig)) {
        $PrevConfig = $config;
        stop_nginx($name);
        setup_server_root();    # also starts a fresh error.log
        write_config_file($block, $config);
        start_nginx($name);
    }

    $ErrLogFilePos = $ErrLogEnd = 0;
    for my $i (0 .. $RepeatEach - 1) {
        if (defined $tests_to_skip) {
            SKIP: { Test::More::skip("$name - $skip_reason", $tests_to_skip) }
        } else {
            $RunTestHelper->($block, 0, $i);
        }
    }
}

sub run_tests () {
    $NginxVersion = get_nginx_version();
    $ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;
    for my $block ($NoShuffle ? Test::Base::blocks() : shuffle Test::Base::blocks()) {
        $_->($block) for @BlockPreprocessors;
        $block->set_value("name", $0 . " " . $block->name);
        run_test($block);
    }
    cleanup();
}

END {
    if ($$ == $MainPid) {
        local $?;    # keep the test's exit status
        cleanup();
        stop_nginx('END') unless $ENV{TEST_NGINX_NO_CLEAN};
    }
}

1;
