package Test::Nginx::Util;

# Minimal stand-in for the CPAN Test::Nginx::Util (openresty/test-nginx):
# nginx.conf generation, nginx process management, error log access and the
# per-block driver.  Only used when the real module is not installed, so the
# names, defaults and test messages mirror the real ones.

use strict;
use warnings;

use base 'Exporter';

use POSIX qw(SIGQUIT SIGKILL);
use File::Spec ();
use File::Path qw(make_path remove_tree);
use List::Util qw(shuffle min);
use Scalar::Util qw(looks_like_number);
use Time::HiRes qw(sleep time);
use IO::Socket::INET;
use Test::More ();

our $VERSION = '0.29';

our @EXPORT = qw(
    env_to_nginx is_str check_accum_error_log is_running $NoLongString
    no_long_string $ServerAddr server_addr $ServerName server_name
    parse_time verbose sleep_time bail_out add_cleanup_handler
    access_log_data error_log_data setup_server_root write_config_file
    get_canon_version get_nginx_version trim show_all_chars parse_headers
    run_tests run_test get_pid_from_pidfile $ServerPortForClient $ServerPort
    $NginxVersion $PidFile $ServRoot $ConfFile $RunTestHelper $CheckErrorLog
    $FilterHttpConfig $NoNginxManager $RepeatEach $CheckLeak $Benchmark
    add_block_preprocessor timeout worker_connections workers master_on
    master_off config_preamble repeat_each master_process_enabled log_level
    no_shuffle no_root_location html_dir server_root server_port
    server_port_for_client no_nginx_manager use_hup
);

our $Verbose           = $ENV{TEST_NGINX_VERBOSE};
our $NoNginxManager    = $ENV{TEST_NGINX_NO_NGINX_MANAGER} || 0;
our $NoShuffle         = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $LoadModules       = $ENV{TEST_NGINX_LOAD_MODULES};
our $EventType         = $ENV{TEST_NGINX_EVENT_TYPE};
our $PostponeOutput    = $ENV{TEST_NGINX_POSTPONE_OUTPUT};
our $Timeout           = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $CheckAccumErrLog  = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $WorkerUser        = $ENV{TEST_NGINX_WORKER_USER};
our $NginxBinary       = $ENV{TEST_NGINX_BINARY}
                         || (can_run('nginx') ? 'nginx' : '/usr/sbin/nginx');
our $LogLevel          = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcessEnabled = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $ServerPort        = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
our $ServerPortForClient = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort || 1984;
our $TestNginxSleep    = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $ForceRestartOnTest = $ENV{TEST_NGINX_FORCE_RESTART_ON_TEST} // 1;
our ($CheckLeak, $Benchmark, $UseHup) = (0, 0, 0);   # modes not implemented
our $ServerAddr = '127.0.0.1';
our $ServerName = 'localhost';
our $RepeatEach = 1;
our $Workers = 1;
our $WorkerConnections = 64;
our $DaemonEnabled = 'on';
our $NoRootLocation = 0;
our $NoLongString;
our $ConfigPreamble = '';
our ($FilterHttpConfig, $RunTestHelper, $CheckErrorLog);
our ($NginxVersion, $NginxRawVersion, $NginxConfigureArgs, $PrevConfig);
our (@EnvToNginx, @BlockPreprocessors, @CleanupHandlers);
our $FirstTime = 1;
our $ErrLogFilePos = 0;
our $ErrLogEnd = 0;        # where the last read of error.log stopped
our $MainPid = $$;         # END must not act in forked children

our $ServRoot = $ENV{TEST_NGINX_SERVROOT} || File::Spec->rel2abs('t/servroot');
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;
our $LogDir     = "$ServRoot/logs";
our $ErrLogFile = "$LogDir/error.log";
our $AccLogFile = "$LogDir/access.log";
our $HtmlDir    = "$ServRoot/html";
our $ConfDir    = "$ServRoot/conf";
our $ConfFile   = "$ConfDir/nginx.conf";
our $PidFile    = "$LogDir/nginx.pid";

# ---- configuration setters/getters (same call shapes as the real ones) ----
sub no_long_string ()        { $NoLongString = 1 }
sub no_shuffle ()            { $NoShuffle = 1 }
sub no_root_location ()      { $NoRootLocation = 1 }
sub no_nginx_manager ()      { $NoNginxManager = 1 }
sub use_hup ()               { warn "WARNING: use_hup() is not supported, ignored\n" }
sub check_accum_error_log () { $CheckAccumErrLog = 1 }
sub master_on ()             { $MasterProcessEnabled = 'on' }
sub master_off ()            { $MasterProcessEnabled = 'off' }
sub config_preamble ($)      { $ConfigPreamble = shift }
sub add_block_preprocessor (&) { unshift @BlockPreprocessors, shift }
sub add_cleanup_handler ($)  { unshift @CleanupHandlers, shift }
sub html_dir ()              { $HtmlDir }
sub server_root ()           { $ServRoot }
sub sleep_time               { $TestNginxSleep }
sub verbose                  { $Verbose }

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
    return $MasterProcessEnabled unless @_;
    $MasterProcessEnabled = shift() ? 'on' : 'off';
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

# ---- small helpers ----
sub parse_time ($) {
    my $tm = shift;
    if (defined $tm) {
        if ($tm =~ s/([^_a-zA-Z])ms$/$1/) { $tm /= 1000 }
        else { $tm =~ s/([^_a-zA-Z])s$/$1/ }
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

sub show_all_chars ($) {
    my $s = shift;
    $s =~ s/\n/\\n/gs; $s =~ s/\r/\\r/gs; $s =~ s/\t/\\t/gs;
    $s;
}

# "Name: value" lines; "!Name" means the header must be absent (undef value).
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
    return (-f $cmd && -x $cmd) ? $cmd : undef if $cmd =~ m{/};
    for my $dir (split(/:/, $ENV{PATH} // ''), '.') {
        next if $dir eq '';
        return "$dir/$cmd" if -f "$dir/$cmd" && -x "$dir/$cmd";
    }
    return undef;
}

sub bail_out (@) {
    cleanup();
    Test::More::BAIL_OUT(@_);
}

sub cleanup () { $_->() for @CleanupHandlers }

# kill(0) also succeeds for zombies (nginx daemons are not our children and
# may linger as zombies in containers), so look at /proc as well.
sub is_running ($) {
    my $pid = shift;
    return 0 unless $pid && kill 0, $pid;
    if (open my $in, '<', "/proc/$pid/stat") {
        my $stat = <$in> // '';
        return 0 if $stat =~ /^\d+ \(.*\) Z/s;
    }
    return 1;
}

sub get_pid_from_pidfile ($) {
    my $name = shift;
    open my $in, '<', $PidFile
        or bail_out("$name - Failed to open the pid file $PidFile for reading: $!");
    my $pid = do { local $/; <$in> } // '';
    chomp $pid;
    return $pid;
}

# Stop the nginx recorded in the pid file: QUIT, wait up to timeout(), KILL.
# Only signals the pid if it really is an nginx process (stale pid files).
sub stop_nginx ($) {
    my $name = shift;
    return unless -f $PidFile;
    my $pid = get_pid_from_pidfile($name);
    my $ours = !-d '/proc/self';    # without /proc, trust the pid file
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

# ---- error/access logs ----
sub read_lines_from ($$) {
    my ($file, $pos) = @_;
    open my $in, '<', $file or return (undef, $pos);
    seek $in, $pos, 0 if $pos > 0;
    my @lines = <$in>;
    return (\@lines, tell $in);
}

# Lines written to error.log since the previous read (or since the start of
# the current block; everything under check_accum_error_log()).
sub error_log_data () {
    # lines from the log phase may be written after the connection is closed
    sleep $TestNginxSleep * 3;
    my ($lines, $end) = read_lines_from($ErrLogFile, $CheckAccumErrLog ? 0 : $ErrLogFilePos);
    return [] unless $lines;
    $ErrLogEnd = $end;
    $ErrLogFilePos = $end unless $CheckAccumErrLog;
    return $lines;
}

# Lines appended since the last error_log_data()/error_log_more() call.
sub error_log_more () {
    my ($lines, $end) = read_lines_from($ErrLogFile, $ErrLogEnd);
    return [] unless $lines;
    $ErrLogEnd = $end;
    $ErrLogFilePos = $end unless $CheckAccumErrLog;
    return $lines;
}

sub access_log_data () {
    sleep $TestNginxSleep * 3;
    my ($lines) = read_lines_from($AccLogFile, 0);
    die "open $AccLogFile failed: $!" unless $lines;
    return $lines;
}

# ---- nginx version ----
sub get_canon_version (@) { sprintf "%d.%03d%03d", $_[0], $_[1], $_[2] }

sub get_nginx_version () {
    my $out = `$NginxBinary -V 2>&1`;
    if (!defined $out || $? != 0) {
        bail_out("Failed to get the version of the Nginx in PATH: " . ($out // ''));
    }
    $NginxConfigureArgs = $out =~ /configure arguments:(.*)/ ? $1 : '';
    if ($out =~ m{(?:nginx|openresty)[^/]*/(\d+)\.(\d+)\.(\d+)}s
        || $out =~ m{\w+/(\d+)\.(\d+)\.(\d+)}s)
    {
        $NginxRawVersion = "$1.$2.$3";
        return get_canon_version($1, $2, $3);
    }
    bail_out("Failed to parse the output of \"nginx -V\": $out\n");
}

# ---- server root, user files, nginx.conf ----
sub setup_server_root () {
    if (-d $ServRoot) {
        # remove only what we create, so a mis-set TEST_NGINX_SERVROOT
        # cannot wipe real data
        remove_tree($ConfDir, $HtmlDir, $LogDir, glob("$ServRoot/*_cache"),
                    glob("$ServRoot/*_temp"));
        rmdir $ServRoot or bail_out("Can't remove $ServRoot (not empty?): $!");
    }
    for my $dir ($ServRoot, $LogDir, $HtmlDir, $ConfDir) {
        mkdir $dir or bail_out("Failed to do mkdir $dir\n");
    }
    open my $out, '>', "$HtmlDir/index.html"
        or bail_out("Can't open $HtmlDir/index.html for writing: $!\n");
    print $out '<html><head><title>It works!</title></head><body>It works!</body></html>';
    close $out;
}

sub write_user_files ($$) {
    my ($block, $rand_ports) = @_;
    my $name = $block->name;
    my $files = $block->user_files or return;
    if (!ref $files) {
        my @list;
        for my $line (split /^/m, $files) {
            if ($line =~ /^>>> (\S+)(?:\s+(.+))?/) { push @list, [$1, undef, $2] }
            elsif (@list) { $list[-1][1] .= $line }
        }
        $files = \@list;
    } elsif (ref $files ne 'ARRAY') {
        bail_out("$name - wrong value type: ", ref $files, ", only scalar or ARRAY are accepted");
    }
    for my $file (@$files) {
        my ($fname, $body, $date) = @$file;
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        if ($path =~ m{(.*)/} && !-d $1) {
            make_path($1) or bail_out("$name - Cannot create directory ", $1);
        }
        $body = expand_env_in_text($body // '', $name, $rand_ports);
        open my $out, '>', $path or bail_out("$name - Cannot open $path for writing: $!\n");
        binmode $out;
        print $out $body;
        close $out;
        if ($date) {
            system("TZ=GMT touch -t '$date' $path") == 0
                or bail_out("Failed to run shell command: touch $path\n");
        }
    }
}

sub gen_rand_port ($) {
    my $used = shift;
    for (1 .. 1000) {
        my $port = int(rand 63550) + 1985;
        next if $used->{$port};
        my $sock = IO::Socket::INET->new(LocalAddr => $ServerAddr, LocalPort => $port,
                                         Proto => 'tcp') or next;
        close $sock;
        return $port;
    }
    return undef;
}

# $TEST_NGINX_FOO -> $ENV{TEST_NGINX_FOO}; $TEST_NGINX_RAND_PORT_N -> free port
sub expand_env_in_text ($$$) {
    my ($text, $name, $rand_ports) = @_;
    return undef unless defined $text;
    my %used = ($ServerPort => 1, map { $_ => 1 } values %$rand_ports);
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        my $var = $1;
        if ($var =~ /^TEST_NGINX_RAND_PORT_[0-9]+$/) {
            $rand_ports->{$var} //= do {
                my $p = gen_rand_port(\%used)
                    // bail_out("$name - Cannot find an available listening port number for $var.\n");
                $used{$p} = 1;
                $p;
            };
        } else {
            bail_out("$name - No environment $var defined.\n") unless defined $ENV{$var};
            $ENV{$var};
        }
    }eg;
    return $text;
}

sub write_config_file ($$$) {
    my ($block, $config, $rand_ports) = @_;
    my $name = $block->name;
    my $http_config = expand_env_in_text($block->http_config, $name, $rand_ports) // '';
    $http_config = $FilterHttpConfig->($http_config) if $FilterHttpConfig;
    my $main_config = $block->main_config // '';
    if ($LoadModules) {   # appended to main_config, as the real module does
        $main_config .= join ' ', map { "load_module $_;" } grep { $_ } split /\s+/, $LoadModules;
    }
    $main_config = expand_env_in_text($main_config, $name, $rand_ports);
    my $post_main_config = expand_env_in_text($block->post_main_config, $name, $rand_ports) // '';
    my $err_log_file = $block->error_log_file || $ErrLogFile;
    my $server_name = $block->server_name // $ServerName;
    $config //= '';

    my $extra_http = '';
    if (defined $PostponeOutput && $http_config !~ /\bpostpone_output\b/) {
        $extra_http .= "    postpone_output $PostponeOutput;\n";
    }
    # Keep temp files inside the server root (the compiled-in defaults may
    # not exist or be writable); skipped when the test sets them itself or
    # the binary lacks the module.
    for my $m (qw(client_body proxy fastcgi uwsgi scgi)) {
        next if $http_config =~ /\b${m}_temp_path\b/;
        next if $m ne 'client_body' && ($NginxConfigureArgs // '') =~ /--without-http_${m}_module/;
        $extra_http .= "    ${m}_temp_path $ServRoot/${m}_temp;\n";
    }

    my $env = join '', map { "env $_;\n" } qw(MOCKEAGAIN_VERBOSE MOCKEAGAIN
        MOCKEAGAIN_WRITE_TIMEOUT_PATTERN LD_PRELOAD LD_LIBRARY_PATH
        DYLD_INSERT_LIBRARIES DYLD_FORCE_FLAT_NAMESPACE);
    $env .= join '', map { /\s/ ? "env '$_';\n" : "env $_;\n" } @EnvToNginx;
    my $root_location = $NoRootLocation ? '' : <<_EOC_;
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_
    my $use_event = $EventType ? "    use $EventType;\n" : '';
    my $user = defined $WorkerUser ? "user $WorkerUser;\n"
             : $> == 0            ? "user root;\n" : '';

    open my $out, '>', $ConfFile or bail_out("Can't open $ConfFile for writing: $!\n");
    print $out <<_EOC_;
worker_processes  $Workers;
daemon $DaemonEnabled;
master_process $MasterProcessEnabled;
error_log $err_log_file $LogLevel;
pid       $PidFile;
$env
$main_config

http {
    access_log $AccLogFile;

    default_type text/plain;
    keepalive_timeout  68;
$extra_http
$http_config

    server {
        listen          $ServerPort;
        server_name     '$server_name';

        client_max_body_size 30M;

        # Begin preamble config...
$ConfigPreamble
        # End preamble config...

        # Begin test case config...
$config
        # End test case config.

$root_location    }
}

$post_main_config

events {
    accept_mutex off;

    worker_connections  $WorkerConnections;
$use_event}
env ASAN_OPTIONS;
env MOCKNOEAGAIN_VERBOSE;
env MOCKNOEAGAIN;
$user
_EOC_
    close $out;
}

# ---- starting nginx ----
sub nginx_cmd () { "$NginxBinary -p $ServRoot/ -c $ConfFile > /dev/null" }

sub port_listening ($) {
    my $port = shift;
    my $found;
    for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $in, '<', $f or next;
        $found //= 0;
        while (<$in>) {
            return 1 if /^\s*\d+:\s+[0-9A-F]+:([0-9A-F]{4})\s+\S+\s+0A\s/ && hex($1) == $port;
        }
    }
    return $found // 1;   # no /proc: rely on the pid file alone
}

# With "daemon on", nginx has bound its sockets before the launching process
# exits; still poll for the pid file and the listening socket (no fixed
# sleeps, and no probe connections, which would show up in error.log).
sub wait_nginx_ready ($) {
    my $name = shift;
    my $deadline = time + 10;
    my $step = 0.002;
    while (time < $deadline) {
        if (-s $PidFile) {
            my $pid = get_pid_from_pidfile($name);
            return 1 if is_running($pid) && port_listening($ServerPort);
        }
        sleep $step;
        $step = min($step * 2, 0.05);
    }
    warn "WARNING: $name - nginx did not become ready within 10 seconds\n";
    return 0;
}

sub start_nginx ($) {
    my $name = shift;
    bail_out("$name - Cannot find the nginx executable in the PATH environment")
        unless can_run($NginxBinary);
    my $cmd = nginx_cmd();
    my ($i, $waited) = (0, 0);
    while (1) {
        system($cmd);
        my $status = $?;
        last if $status == 0;
        # maybe the port is still held by a dying instance: retry a while
        my $delay = min(0.1 * ++$i, 1);
        sleep $delay;
        $waited += $delay;
        bail_out("$name - Cannot start nginx using command \"$cmd\" (status code $status).")
            if $waited >= 10;
    }
    wait_nginx_ready($name);
}

# --- must_die: nginx is expected to refuse the config and exit.
sub run_must_die ($$) {
    my ($block, $must_die) = @_;
    my $name = $block->name;
    for my $i (0 .. $RepeatEach - 1) {
        system(nginx_cmd());
        my $status = $?;
        if ($status == -1) {
            Test::More::fail("$name - failed to execute the nginx command line");
        } elsif ($status & 128) {
            Test::More::fail("$name - nginx core dumped");
        } elsif (looks_like_number($must_die)) {
            Test::More::is($must_die, $status >> 8, "$name - die with the expected exit code");
        } else {
            Test::More::isnt($status, 0, "$name - die as expected");
        }
        $CheckErrorLog->($block, undef, 0, $i, 0);
        if ($status == 0) {
            warn "WARNING: $name - nginx must die but it does not; killing it (req $i)";
            wait_nginx_ready($name);
            stop_nginx($name);
        }
    }
}

# "N: <op> x.y.z" (skip_nginx) or "N: perl-expr" (skip_eval)
sub skip_spec ($) {
    my $block = shift;
    my $name = $block->name;
    if (defined(my $spec = $block->skip_eval)) {
        if ($spec =~ /^\s*(\d+)\s*:\s*(.*)/s) {
            my ($n, $code) = ($1, $2);
            my $skip = eval $code;
            bail_out("$name - skip_eval - failed to eval the Perl code \"$code\": $@") if $@;
            return ($n, "skip_eval") if $skip;
        }
    }
    if (defined(my $spec = $block->skip_nginx)) {
        $spec =~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)(?:\s*:\s*(.*))?\s*$/
            or bail_out("$name - Invalid --- skip_nginx spec: $spec");
        my ($n, $op, $reason) = ($1, $2, $6 || "nginx version $2 $3.$4.$5");
        my $ver = get_canon_version($3, $4, $5);
        return ($n, $reason) if eval "$NginxVersion $op $ver";
    }
    return;
}

# ---- the per-block driver ----
sub run_test ($) {
    my $block = shift;
    return if defined $block->SKIP;
    my $name = $block->name;
    my $rand_ports = {};
    my $config = expand_env_in_text($block->config, $name, $rand_ports);

    local $LogLevel = $LogLevel;
    $LogLevel = $block->log_level if $block->log_level;

    my $should_restart = 1;
    if (!defined $config) {
        if (!$NoNginxManager && !defined $PrevConfig) {
            bail_out("$name - No '--- config' section specified and could not get previous one. Use TEST_NGINX_NO_NGINX_MANAGER ?");
        }
        $should_restart = 0;    # keep using the running nginx
    } elsif ($NoNginxManager) {
        Test::More::diag("NO_NGINX_MANAGER activated: config for $name ignored");
        $should_restart = 0;
    } else {
        $should_restart = $ForceRestartOnTest || !defined $PrevConfig || $config ne $PrevConfig;
    }

    my ($tests_to_skip, $skip_reason) = skip_spec($block);

    if ($should_restart && !defined $tests_to_skip) {
        $PrevConfig = $config;
        stop_nginx($name);
        setup_server_root();
        write_user_files($block, $rand_ports);
        write_config_file($block, $config, $rand_ports);
        $ErrLogFilePos = $ErrLogEnd = 0;
        if (defined(my $must_die = $block->must_die)) {
            run_must_die($block, $must_die);
            return;
        }
        start_nginx($name);
    }

    if ($block->init) {
        eval $block->init;
        bail_out("$name - init failed: $@") if $@;
    }

    $ErrLogFilePos = $ErrLogEnd = 0;
    for my $i (1 .. $RepeatEach) {
        write_user_files($block, $rand_ports) if $i > 1;
        if (defined $tests_to_skip) {
            SKIP: { Test::More::skip("$name - $skip_reason", $tests_to_skip) }
        } else {
            $RunTestHelper->($block, 0, $i - 1);
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
        local $?;   # keep the test exit status intact
        cleanup();
        stop_nginx('END') unless $ENV{TEST_NGINX_NO_CLEAN};
    }
}

1;
