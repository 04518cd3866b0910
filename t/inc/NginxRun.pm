package NginxRun;

# The nginx of a plain Test::More file (docs/decisions.md, "Tests: data
# blocks, and programs"): configured as Test::Nginx configures the suite's
# (a server root with conf/ and logs/, the module loaded, one server on
# TEST_NGINX_PORT, debug log), started and stopped by the file itself, so
# that a test whose nature is a program (stopping a worker, restarting
# PostgreSQL, reloading) is written as one.  It sets TEST_NGINX_SERVROOT,
# TEST_NGINX_SERVER_ROOT and TEST_NGINX_SERVER_PORT: Retell's post, get,
# block_log and Faults' nginx_pids then find this nginx as they find
# Test::Nginx's.
#
#   use NginxRun;
#   block('TEST 1: what must hold', http => '...', config => '...',
#         workers => 1, main => '...', log_level => 'debug',
#         worker_connections => 64,
#         each => sub { ... }, test => sub { my ($name) = @_; ... });
#
# block() is what a Test::Nginx block of the database files did: an empty
# database (Retell::reset_db), a log mark, its own nginx, one assertion that
# it serves (GET /fast answered 200: the configuration must have that
# location; or serves => sub { my ($name) = @_; ... }, one assertion of the
# file's own, as a real delivery), the test, nginx stopped.

use strict;
use warnings;
use File::Temp ();
use Time::HiRes ();
use Exporter 'import';
use Retell ();
use Faults ();

our @EXPORT = qw(block webhook_block nginx_start_block nginx_stop_block);

my $bin = $ENV{TEST_NGINX_BINARY} // '/usr/sbin/nginx';
my $port = $ENV{TEST_NGINX_SERVER_PORT} // $ENV{TEST_NGINX_PORT} // 1984;
$ENV{TEST_NGINX_SERVER_PORT} = $port;

my $top = File::Temp::tempdir('retell-nginx-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $blocks = 0;
my $root;           # the running block's server root
my $owner = $$;

sub port { return $port }

# LISTEN state in /proc/net/tcp: no probe connection, which the log would show
sub listening {
    open my $in, '<', '/proc/net/tcp' or return 1;
    while (<$in>) {
        return 1 if /^\s*\d+:\s+[0-9A-F]+:([0-9A-F]{4})\s+\S+\s+0A\s/ && hex($1) == $port;
    }
    return 0;
}

sub master_pid {
    return unless $root;
    open my $fh, '<', "$root/logs/nginx.pid" or return;
    my ($pid) = (<$fh> // '') =~ /(\d+)/;
    return $pid;
}

# start(http => ..., config => ..., main => ..., workers => N,
# log_level => L, worker_connections => C): a new server root, nginx started in it, returned once
# it listens
sub nginx_start_block {
    my (%o) = @_;
    nginx_stop_block();
    $root = "$top/" . ++$blocks;
    mkdir $_ or die "mkdir $_: $!" for $root, "$root/conf", "$root/logs";
    $ENV{TEST_NGINX_SERVROOT} = $ENV{TEST_NGINX_SERVER_ROOT} = $root;
    my $modules = join '', map { "load_module $_;\n" } grep { $_ } split ' ',
        $ENV{TEST_NGINX_LOAD_MODULES} // "$Retell::REPO/build/nginx/objs/ngx_http_retell_module.so";
    my $user = $> == 0 ? "user root;\n" : '';
    my $workers = $o{workers} // 1;
    my $level = $o{log_level} // 'debug';
    my $connections = $o{worker_connections} // 64;
    open my $fh, '>', "$root/conf/nginx.conf" or die $!;
    print $fh <<"_EOC_";
worker_processes $workers;
daemon on;
master_process on;
error_log $root/logs/error.log $level;
pid $root/logs/nginx.pid;
$modules@{[ $o{main} // '' ]}
http {
    access_log $root/logs/access.log;
    default_type text/plain;
    keepalive_timeout 68;
    client_body_temp_path $root/client_body_temp;
@{[ $o{http} // '' ]}
    server {
        listen 127.0.0.1:$port;
        server_name localhost;
        client_max_body_size 30M;
@{[ $o{config} // '' ]}
    }
}
events {
    accept_mutex off;
    worker_connections $connections;
}
$user
_EOC_
    close $fh;
    # the port may still be held by a dying nginx: retry for a while
    my $started = Retell::wait_for(sub {
        system("$bin -p $root/ -c $root/conf/nginx.conf 2>>$root/logs/start.log") == 0 }, 10)
        or die "nginx did not start: " . Faults::slurp("$root/logs/start.log");
    Retell::wait_for(sub { my $pid = master_pid(); $pid && Faults::pid_alive($pid) && listening() }, 10)
        or die "nginx does not listen on $port";
    return $root;
}

# QUIT, and wait until the master has gone (it waits for its workers);
# KILL, master and workers, if it has not within 15 s.  Nothing when the
# test stopped it itself.
sub nginx_stop_block {
    my $pid = master_pid() or return;
    return unless Faults::pid_alive($pid);
    kill 'QUIT', $pid;
    return if Retell::wait_for(sub { !Faults::pid_alive($pid) }, 15);
    my @workers = Faults::children_of($pid);
    kill 'KILL', $pid, @workers;
    Retell::wait_for(sub { !grep { Faults::pid_alive($_) } $pid, @workers }, 5);
}

END { local $?; nginx_stop_block() if $$ == $owner }

sub block {
    my ($name, %o) = @_;
    Retell::reset_db();
    Retell::mark_log();
    $o{each}->() if $o{each};
    nginx_start_block(%o);
    if ($o{serves}) {
        $o{serves}->($name);
    } else {
        my ($status) = Retell::get('/fast');
        Test::More::is($status, 200, "$name: nginx serves");
    }
    local $::name = $name;
    $o{test}->($name);
    nginx_stop_block();
}


# block() with the suite's usual server, one worker: the two endpoints
# (each with extra_config), /fast, the test database unless http is given
sub webhook_block {
    my ($name, %o) = @_;
    my $extra = delete $o{extra_config} // '';
    block($name, workers => 1,
          http => Retell::pg_http_config(),
          config => Retell::webhook_locations(in => $extra, out => $extra)
                    . "location = /fast { return 200 \"fast\\n\"; }\n",
          %o);
}

1;
