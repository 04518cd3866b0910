package Faults;

# Real faults for the t/*.t files: a TCP proxy between nginx and PostgreSQL
# that resets or stalls connections (t/fault-proxy), a port whose connects
# hang (t/blackhole), the pids of nginx and PostgreSQL processes, and a
# PostgreSQL killed with SIGKILL.  Every wait polls a condition.
#
#   use lib 't/inc'; use Retell; use Faults;
#   my $port = proxy_start();            # 127.0.0.1:PG port+1 -> PostgreSQL
#   ... retell_postgres "@{[ proxy_conninfo() ]}" ...
#   proxy_cmd('reset');  my $n = proxy_cmd('count');
#   pg_kill9();  my $t_up = pg_start_timed();   # or Retell's pg_start()
#
# Default ports follow TEST_NGINX_PG_PORT (P): the proxy listens on P+1 with
# its control port on P+2, the blackhole is on P+3.

use strict;
use warnings;
use POSIX ();
use Time::HiRes ();
use IO::Socket::INET;
use File::Temp ();
use Exporter 'import';
use Retell ();

our @EXPORT = qw(proxy_start proxy_cmd proxy_stop proxy_conninfo
                 proxy_block_preprocessor
                 proxy_http_config
                 blackhole_start blackhole_stop
                 nginx_pids pg_pids pg_kill9 pg_start_timed pg_backend_pids
                 pid_alive children_of tcp_sockets);

my $owner = $$;     # END cleans up in this process only, not in forks
my ($pg_port) = $Retell::PG =~ /port=(\d+)/;

# the helpers' default ports follow the test cluster's, so runs with other
# TEST_NGINX_PG_PORT values do not collide
my %proxy;          # pid, dir, listen, control
my %hole;           # pid, dir, port

sub spawn {
    my ($dir, @cmd) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDERR, '>>', "$dir/log";
        exec @cmd or POSIX::_exit(127);
    }
    return $pid;
}

sub reap {
    my ($pid) = @_;
    return unless $pid;
    kill 'TERM', $pid;
    waitpid $pid, 0;
}

# -- the proxy

# proxy_start(listen => PORT, control => PORT, target => 'HOST:PORT',
#             verbose => 1): returns the listen port once it listens
sub proxy_start {
    my (%opt) = @_;
    proxy_stop();
    my $dir = File::Temp::tempdir(CLEANUP => 1);
    my $listen = $opt{listen} // $pg_port + 1;
    my $control = $opt{control} // $pg_port + 2;
    my $target = $opt{target} // "127.0.0.1:$pg_port";
    my $pid = spawn($dir, "$Retell::REPO/t/fault-proxy", '--listen', $listen,
                    '--target', $target, '--control', $control,
                    '--ready-file', "$dir/ready",
                    $opt{verbose} ? '--verbose' : ());
    Retell::wait_for(sub { -s "$dir/ready" || !pid_alive($pid) }, 15);
    -s "$dir/ready" or die "fault-proxy did not start: " . slurp("$dir/log");
    %proxy = (pid => $pid, dir => $dir, listen => $listen,
              control => $control);
    return $listen;
}

# one control command; dies unless the answer is "ok ...", returns what
# follows "ok" ('3' for count)
sub proxy_cmd {
    my ($cmd) = @_;
    $proxy{pid} or die "proxy_cmd($cmd): no proxy started";
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $proxy{control}, Timeout => 5)
        or die "fault-proxy control: $!";
    print $s "$cmd\n";
    # a stuck proxy must fail the test, not hang it
    require IO::Select;
    my $answer = IO::Select->new($s)->can_read(10) ? <$s> // '' : 'no answer';
    close $s;
    $answer =~ /^ok ?(.*?)\s*$/ or die "fault-proxy $cmd: $answer";
    return $1;
}

sub proxy_stop {
    reap(delete $proxy{pid});
    %proxy = ();
}

# the test conninfo, through the proxy
sub proxy_conninfo {
    my $port = $proxy{listen} // die "no proxy started";
    (my $ci = $Retell::PG) =~ s/port=\d+/port=$port/;
    return $ci;
}

sub proxy_http_config { return qq{retell_postgres "@{[ proxy_conninfo() ]}";\n} }

# db_block_preprocessor() for the files whose blocks use the proxy: each
# block starts with it passing everything (then runs each => CODE, if
# given), and the server has /fast, a location without the database
sub proxy_block_preprocessor {
    my (%o) = @_;
    return Retell::db_block_preprocessor(
        each => sub { proxy_cmd('pass'); proxy_cmd('resume'); $o{each}->(@_) if $o{each} },
        config => sub {
            Retell::webhook_locations(in => $_[0], out => $_[0])
            . "location = /fast { return 200 \"fast\\n\"; }\n";
        });
}

# -- the blackhole

# blackhole_start(PORT): returns the port once connects to it hang
sub blackhole_start {
    my ($port) = @_;
    $port //= $pg_port + 3;
    blackhole_stop();
    my $dir = File::Temp::tempdir(CLEANUP => 1);
    my $pid = spawn($dir, "$Retell::REPO/t/blackhole", '--port', $port,
                    '--ready-file', "$dir/ready");
    Retell::wait_for(sub { -s "$dir/ready" || !pid_alive($pid) }, 15);
    -s "$dir/ready" or die "blackhole did not start: " . slurp("$dir/log");
    %hole = (pid => $pid, dir => $dir, port => $port);
    return $port;
}

sub blackhole_stop {
    reap(delete $hole{pid});
    %hole = ();
}

END {
    if ($$ == $owner) {
        local $?;
        proxy_stop();
        blackhole_stop();
    }
}

# -- processes and sockets, from /proc

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return '';
    local $/;
    return <$fh> // '';
}

# (state, ppid) of a pid; the command name may hold spaces and parentheses
sub proc_stat {
    my ($pid) = @_;
    my $stat = slurp("/proc/$pid/stat");
    return $stat =~ /^\d+ \(.*\) (\S) (\d+)/s ? ($1, $2) : ();
}

# running: a zombie counts as gone (this container's init does not reap
# orphans, so daemons killed here stay zombies)
sub pid_alive {
    my ($pid) = @_;
    my ($state) = proc_stat($pid);
    return defined $state && $state ne 'Z' && $state ne 'X';
}

sub children_of {
    my ($ppid) = @_;
    my @kids;
    opendir my $d, '/proc' or return;
    for my $pid (grep { /^\d+$/ } readdir $d) {
        my ($state, $parent) = proc_stat($pid);
        push @kids, $pid + 0 if defined $parent && $parent == $ppid
                                && $state ne 'Z' && $state ne 'X';
    }
    return sort { $a <=> $b } @kids;
}

sub first_line_pid {
    my ($file) = @_;
    my ($pid) = slurp($file) =~ /\A\s*(\d+)/;
    return $pid && pid_alive($pid) ? $pid : undef;
}

# the IPv4 TCP sockets of this host, not listening ones:
# [{ local => port, remote => port, state => 'hex', rx => queued bytes }]
# (state '01' established, '06' TIME_WAIT, as in /proc/net/tcp)
# for tests that wait for a packet to arrive where nothing logs it
sub tcp_sockets {
    my @out;
    open my $in, '<', '/proc/net/tcp' or return;
    while (<$in>) {
        /^\s*\d+:\s+[0-9A-F]+:([0-9A-F]{4})\s+[0-9A-F]+:([0-9A-F]{4})\s+([0-9A-F]{2})\s+[0-9A-F]+:([0-9A-F]+)/
            or next;
        next if $3 eq '0A';
        push @out, { local => hex $1, remote => hex $2, state => $3, rx => hex $4 };
    }
    return @out;
}

# (master, workers...) of the test nginx; () when it is not running
sub nginx_pids {
    my $root = $ENV{TEST_NGINX_SERVER_ROOT} // $ENV{TEST_NGINX_SERVROOT}
               // "$Retell::REPO/t/servroot";
    my $master = first_line_pid("$root/logs/nginx.pid") or return;
    return ($master, children_of($master));
}

# (postmaster, its children...); () when it is not running
sub pg_pids {
    my $dir = $ENV{TEST_NGINX_PG_DIR} // die "TEST_NGINX_PG_DIR is not set";
    my $pm = first_line_pid("$dir/postmaster.pid") or return;
    return ($pm, children_of($pm));
}

# SIGKILL the postmaster and every child at once, as a crash would, and
# wait until all are gone.  The postmaster is stopped first so it cannot
# fork a backend between the listing and the kill.
sub pg_kill9 {
    my ($pm) = pg_pids() or die "pg_kill9: PostgreSQL is not running";
    kill 'STOP', $pm;
    my @pids = ($pm, children_of($pm));
    kill 'KILL', @pids;
    Retell::wait_for(sub { !grep { pid_alive($_) } @pids }, 15)
        or die "pg_kill9: still running: @{[ grep { pid_alive($_) } @pids ]}";
    # The dead postmaster stays a zombie here (init does not reap it), and
    # kill(pid, 0) succeeds on zombies: a new postmaster would take the lock
    # files for a live one and refuse to start.  Nothing runs, so they are
    # stale: remove them, as PostgreSQL itself would after a real crash.
    my $dir = $ENV{TEST_NGINX_PG_DIR};
    unlink "$dir/postmaster.pid", glob("$dir/.s.PGSQL.*.lock");
    return @pids;
}

# Retell::pg_start (tools/pg-cluster start), returning the moment
# PostgreSQL first accepted a connection and ran a query: pg-cluster
# returns later (it also applies the migrations)
sub pg_start_timed {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $ok = eval { Retell::pg_start(); 1 };
        POSIX::_exit($ok ? 0 : 1);      # no END blocks in the fork
    }
    require DBI;
    my %kv = map { split /=/, $_, 2 } split ' ', $Retell::PG;
    my $user = delete $kv{user} // 'postgres';
    my $dsn = 'dbi:Pg:' . join ';', map { "$_=$kv{$_}" } sort keys %kv;
    my $try = sub {
        my $db = DBI->connect($dsn, $user, '', { PrintError => 0,
                                                 RaiseError => 0 }) or return;
        my $ok = $db->selectrow_array('SELECT 1');
        $db->disconnect;
        return $ok ? Time::HiRes::time() : undef;
    };
    my ($up, $status);
    Retell::wait_for(sub {
        $up //= $try->();
        $status = $? if !defined $status
                        && waitpid($pid, POSIX::WNOHANG()) == $pid;
        return defined $status && ($up || $status != 0);
    }, 60);
    defined $status or die "pg_start_timed: pg-cluster start hangs";
    $status == 0 or die "pg_start_timed: pg-cluster start failed";
    $up //= $try->() or die "pg_start_timed: PostgreSQL accepts no connection";
    return $up;
}

# client backends other than the test's own DBI connection
sub pg_backend_pids {
    return map { $_->{pid} } @{ Retell::db_rows(q{
        SELECT pid FROM pg_stat_activity
        WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
        ORDER BY pid}) };
}

1;
