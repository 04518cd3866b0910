# Past one host, under load (docs/SCALING.md): two nginx instances on one
# database, the module through PgBouncer in transaction pooling, and a
# PostgreSQL primary killed under load with its synchronous streaming
# standby promoted.  A Retell-like client (t/inc/Load.pm) sends distinct
# signed deliveries and retries every failure as Retell does; what must hold
# each time: every delivery finally 200, every 200 has its rows, nothing is
# half-written or applied twice, the tables hold what the rules say.
#
# Ports, from the suite's: PostgreSQL port P (TEST_NGINX_PG_PORT): the HA
# primary on P+1, its standby on P+2, PgBouncer on P+3, the standby's link
# to the primary (t/fault-proxy) on P+4 with its control port on P+5; nginx
# port N: the second nginx on N+1 (and N+2 for its default server).
#
# A plain Test::More program: each test starts clusters, a PgBouncer, a
# second nginx and a load, kills a primary and promotes its standby; its
# nginx is t/inc/NginxRun.pm's (two workers, info log), and its first
# assertion is a real delivery answered.
use strict;
use warnings;
use lib 't/inc';
use Test::More;
use Retell;
use Faults;
use Load;
use NginxRun;
use POSIX ();
use File::Temp ();
use Time::HiRes qw(time);

sub R { Retell::sample(@_) }

my $owner = $$;
my ($pg_port) = $Retell::PG =~ /port=(\d+)/;
my ($dbname) = $Retell::PG =~ /dbname=(\S+)/;
my %port = (primary => $pg_port + 1, standby => $pg_port + 2, bouncer => $pg_port + 3,
            link => $pg_port + 4, link_control => $pg_port + 5);

# A 200 must survive a crash: the suite's cluster runs with
# synchronous_commit=off (see t/070-faults.t)
dbh()->do(qq{ALTER DATABASE "$dbname" SET synchronous_commit = on});

# -- processes and folders of this file, all gone at END, even on failure

# the newest PostgreSQL installed, as tools/pg-cluster picks it
my $bindir = (sort { ($a =~ m{/(\d+)/bin$})[0] <=> ($b =~ m{/(\d+)/bin$})[0] }
               glob '/usr/lib/postgresql/*/bin')[-1]
    or die "no PostgreSQL server installed";
my $root = $> == 0;
my ($pg_uid, $pg_gid) = $root ? (getpwnam 'postgres')[2, 3] : ($<, (split ' ', $()[0]);
defined $pg_uid or die "as root, PostgreSQL and PgBouncer run as the postgres user: there is none";

my $base;               # everything of this file, under /tmp
my %ha;                 # primary, standby, dead: { dir, port }
my @nodes;              # every cluster made
my %bouncer;            # pid, dir
my $nginx2;             # the second nginx (Retell::nginx_start)
my $mail;               # the SMTP sink's folder (Retell::smtp_start)

sub base {
    return $base if $base;
    # under /tmp, like t/run's cluster: the postgres user may not be able
    # to enter the clone's folder
    $base = File::Temp::tempdir('/tmp/retell-scale.XXXXXX', CLEANUP => 0);
    chmod 0755, $base;
    return $base;
}

# a folder the postgres user owns (as root) or this user does
sub owned_dir {
    my ($name) = @_;
    my $dir = base() . "/$name";
    mkdir $dir, 0700 or die "$dir: $!";
    chown $pg_uid, $pg_gid, $dir if $root;
    return $dir;
}

sub slurp { return Faults::slurp(@_) }

# the last 20 lines of a file
sub tail {
    my @l = split /\n/, slurp($_[0]);
    splice @l, 0, @l - 20 if @l > 20;
    return join "\n", @l;
}

# runs a command (as the postgres user when root), its output into the
# file's log; dies with the log's end when it fails
sub run_cmd {
    my (@cmd) = @_;
    my $log = base() . '/commands.log';
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log;
        open STDERR, '>&', \*STDOUT;
        print "+ @cmd\n";
        if ($root && $cmd[0] =~ m{^\Q$bindir\E/}) {
            exec 'runuser', '-u', 'postgres', '--', @cmd or POSIX::_exit(127);
        }
        exec @cmd or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    $? == 0 or die "@cmd failed:\n" . tail($log);
}

sub conninfo {
    my ($node, $db) = @_;
    return "host=127.0.0.1 port=$node->{port} user=postgres dbname=" . ($db // 'retell_scale');
}

# production durability: every commit flushed before it is answered
my $durable = '-c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on '
            . '-c full_page_writes=on -c wal_level=replica -c max_wal_senders=5 '
            . '-c max_connections=100';

sub pg_ctl_start {
    my ($node, @extra) = @_;
    run_cmd("$bindir/pg_ctl", '-D', $node->{dir}, '-l', "$node->{dir}/server.log", '-w', '-t', '60',
            '-o', "-p $node->{port} -k $node->{dir} $durable @extra", 'start');
}

# The HA pair, $ha{primary} and $ha{standby}: the first time a primary
# made with initdb, the schema and the companies of reset_db; after a
# failover the promoted standby is the primary and a new standby takes the
# dead primary's port.  The standby is streamed from the primary
# (pg_basebackup -R) through t/fault-proxy, its network link that a test
# can stall or cut, and replication made synchronous once it is there: a
# commit is answered only when the standby has flushed it, so a 200
# survives the loss of the primary.  synchronous_standby_names is set
# after the base backup, so the standby's copy of the configuration does
# not have it: promoted, it must not wait for a standby of its own.
my $nodes = 0;

sub ha_start {
    if (!$ha{primary}) {
        $ha{primary} = { dir => owned_dir('node' . ++$nodes), port => $port{primary} };
        push @nodes, $ha{primary};
        run_cmd("$bindir/initdb", '-D', $ha{primary}{dir}, '-U', 'postgres', '-A', 'trust',
                '-E', 'UTF8', '--no-locale', '--no-sync');
        pg_ctl_start($ha{primary});
        run_cmd('psql', conninfo($ha{primary}, 'postgres'), '-q', '-X', '-c', 'CREATE DATABASE retell_scale');
        run_cmd("$Retell::REPO/tools/migrate", conninfo($ha{primary}));
    } else {
        my $dead = delete $ha{dead} or die "ha_start: the last failover left no dead primary";
        $ha{primary} = delete $ha{standby};
        $ha{next_port} = $dead->{port};
    }
    { local $Retell::PG = conninfo($ha{primary}); reset_db() }
    proxy_start(listen => $port{link}, control => $port{link_control},
                target => "127.0.0.1:$ha{primary}{port}");
    # pg_basebackup makes the standby's folder, as its owner, and with -R
    # writes the link's port into its primary_conninfo
    chown $pg_uid, $pg_gid, base() if $root;
    $ha{standby} = { dir => base() . '/node' . ++$nodes,
                     port => delete $ha{next_port} // $port{standby} };
    push @nodes, $ha{standby};
    run_cmd("$bindir/pg_basebackup", '-h', '127.0.0.1', '-p', $port{link}, '-U', 'postgres',
            '-D', $ha{standby}{dir}, '-R', '-X', 'stream', '-c', 'fast', '--no-sync');
    # cluster_name is the standby's application_name at the primary
    pg_ctl_start($ha{standby}, '-c hot_standby=on -c cluster_name=scale_standby');
    local $Retell::PG = conninfo($ha{primary});
    dbh()->do(q{ALTER SYSTEM SET synchronous_standby_names = 'scale_standby'});
    dbh()->do(q{SELECT pg_reload_conf()});
}

sub ha_sync_state {
    local $Retell::PG = conninfo($ha{primary});
    return db_value(q{SELECT sync_state FROM pg_stat_replication
                      WHERE application_name = 'scale_standby' AND state = 'streaming'}) // '';
}

# the conninfo an operator writes: both hosts, the writable one wins
sub ha_http_config {
    return qq{retell_postgres "host=127.0.0.1,127.0.0.1 port=$port{primary},$port{standby} }
         . qq{user=postgres dbname=retell_scale target_session_attrs=read-write";\n}
         . "client_body_buffer_size 30m;\n";
}

# A failover under a paced load (150 deliveries a second; $o{calls} calls,
# 150 by default): the primary killed (SIGKILL, every process) once 100
# deliveries are in, its link to the standby stalled first with $o{lag};
# the standby promoted once it has lost its primary and $o{promote_when}
# (given the load's handle) holds.  Then what must hold, and the figures:
# the gap from the kill to the first 200 applied on the new primary, the
# attempts refused, the deliveries retried.  Returns (results, refused).
sub ha_failover {
    my ($name, %o) = @_;
    Test::More::ok(wait_for(sub { ha_sync_state() eq 'sync' }, 30), "$name: the standby streams, synchronously");
    my ($primary, $standby) = @ha{qw(primary standby)};
    my $h = Load::start(calls => $o{calls} // 150, concurrency => 16, rate => 150);
    Test::More::ok(wait_for(sub { local $Retell::PG = conninfo($primary); stored() >= 100 }, 30),
                   "$name: the load is under way");
    # a standby that lags: its link stalled until commits wait for it at
    # the primary (asynchronous, they would be answered 200), then cut with
    # the primary, and what was in flight on it lost
    my $syncrep;
    if ($o{lag}) {
        proxy_cmd('stall');
        Test::More::ok(wait_for(sub { local $Retell::PG = conninfo($primary);
                                      ($syncrep = db_value(q{SELECT count(*) FROM pg_stat_activity
                                                             WHERE wait_event = 'SyncRep'})) >= 8 }, 30),
                       "$name: the standby lags: commits wait for it");
    }
    my @killed = do { local $ENV{TEST_NGINX_PG_DIR} = $primary->{dir}; pg_kill9() };
    my $t_kill = time;
    if ($o{lag}) {
        proxy_cmd('refuse');
        proxy_cmd('reset');
    }
    $ha{dead} = $primary;
    # the standby notices, as a failover manager would
    Test::More::ok(wait_for(sub { local $Retell::PG = conninfo($standby);
                                  (db_value(q{SELECT status FROM pg_stat_wal_receiver}) // '') ne 'streaming' }, 30),
                   "$name: the standby lost its primary");
    my $t_lost = time;
    Test::More::ok(wait_for(sub { $o{promote_when}->($h) }, 30), "$name: $o{promote_what}")
        if $o{promote_when};
    run_cmd("$bindir/pg_ctl", '-D', $standby->{dir}, '-w', '-t', '60', 'promote');
    my $t_promoted = time;
    my $r = $h->wait;
    local $Retell::PG = conninfo($standby);
    Test::More::is(db_value(q{SELECT pg_is_in_recovery()}), 0, "$name: the standby is the primary now");
    # when each delivery was applied, by the server's clock (this machine's)
    my %at = map { $_->{sha} => $_->{t} } @{ db_rows(q{
        SELECT encode(payload_sha256, 'hex') AS sha, extract(epoch FROM received_at)::float8 AS t
          FROM retell.webhook_events WHERE left(call_id, length($1)) = $1}, $r->{prefix}) };
    my @d = @{ $r->{deliveries} };
    my $old = grep { ($at{$_->{sha256}} // 9e9) < $t_kill } @d;
    my @new = sort { $a <=> $b } map { my $d = $_; map { $_->{answered} }
                  grep { $_->{status} == 200 && $_->{body} =~ /"duplicate":false/ } @{ $d->{attempts} } }
              grep { ($at{$_->{sha256}} // 0) > $t_kill } @d;
    my @refused = Load::refused_after($r, 0);
    my $retried = grep { @{ $_->{attempts} } > 1 } @d;
    Test::More::diag(sprintf "%s: %d PostgreSQL processes killed%s; the standby saw it after %.2f s, promoted %.2f s after the kill",
                     $name, scalar @killed,
                     $o{lag} ? ", $syncrep commits waiting for the standby" : '',
                     $t_lost - $t_kill, $t_promoted - $t_kill);
    Test::More::diag(sprintf "%s: first 200 applied on the new primary %.3f s after the kill (%.3f s after the promotion); "
                     . "%d deliveries applied before the kill, %d after; %d attempts refused, %d deliveries retried",
                     $name, @new ? ($new[0] - $t_kill, $new[0] - $t_promoted) : (-1, -1), $old, scalar @new,
                     scalar @refused, $retried);
    Test::More::diag("$name: " . Load::summary($r));
    show_refused(@refused);
    Test::More::cmp_ok($old, '>', 50, "$name: deliveries applied on the old primary");
    Test::More::cmp_ok(scalar @new, '>', 100, "$name: deliveries applied on the new primary");
    Test::More::is(scalar(not_final_200($r)), 0, "$name: every delivery final 200 after the retries");
    # on the new primary: every 200 the old one answered is there too
    no_problems("$name: the new primary keeps the promises", Load::check_db($r));
    Test::More::is(scalar(Load::refused_after($r, $t_promoted)), 0, "$name: nothing sent after the promotion is refused");
    # a delivery waiting when the new primary takes writes is applied: the
    # workers try again within a quarter of a second while deliveries wait
    my @late = grep { $_->{answered} > $t_promoted + 0.3 } @refused;
    Test::More::is(scalar(@late), 0, "$name: no delivery refused later than 0.3 s after the promotion")
        or show_refused(@late);
    Test::More::like(block_log(), qr/retell postgres connected to "127\.0\.0\.1:$standby->{port}"/,
                     "$name: nginx connected to the promoted standby");
    Test::More::unlike(block_log(), qr/\[(alert|crit|emerg)\]/, "$name: no alert");
    return ($r, \@refused);
}

# PgBouncer in transaction pooling in front of the suite's cluster: four
# server connections for however many clients
sub bouncer_start {
    return if $bouncer{pid};
    my $exe = '/usr/sbin/pgbouncer';
    -x $exe or die "$exe is missing: tools/install-deps installs Debian's pgbouncer";
    my $dir = owned_dir('bouncer');
    open my $fh, '>', "$dir/pgbouncer.ini" or die $!;
    print $fh <<"_EOC_";
[databases]
$dbname = host=127.0.0.1 port=$pg_port dbname=$dbname user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port{bouncer}
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = 4
max_client_conn = 200
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
_EOC_
    close $fh;
    open $fh, '>', "$dir/userlist.txt" or die $!;
    print $fh qq{"postgres" ""\n};
    close $fh;
    chown $pg_uid, $pg_gid, "$dir/pgbouncer.ini", "$dir/userlist.txt" if $root;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/stdout.log";
        open STDERR, '>&', \*STDOUT;
        if ($root) {    # PgBouncer refuses to run as root
            $) = "$pg_gid $pg_gid";
            POSIX::setgid($pg_gid) && POSIX::setuid($pg_uid) or POSIX::_exit(126);
        }
        exec $exe, "$dir/pgbouncer.ini" or POSIX::_exit(127);
    }
    %bouncer = (pid => $pid, dir => $dir);
    wait_for(sub { bouncer_admin('SHOW VERSION') || !pid_alive($pid) }, 15);
    bouncer_admin('SHOW VERSION')
        or die "pgbouncer did not start:\n" . slurp("$dir/stdout.log") . tail("$dir/pgbouncer.log");
}

# a command on PgBouncer's admin console: its rows, fields split on '|'
sub bouncer_admin {
    my ($cmd) = @_;
    my $out = `psql "host=127.0.0.1 port=$port{bouncer} user=postgres dbname=pgbouncer" -X -A -t -F '|' -c '$cmd' 2>/dev/null`;
    return $? == 0 ? [ map { [ split /\|/, $_, -1 ] } split /\n/, $out ] : undef;
}

sub bouncer_http_config {
    local $Retell::PG = "host=127.0.0.1 port=$port{bouncer} user=postgres dbname=$dbname";
    return Retell::smtp_http_config();
}

END {
    if ($$ == $owner) {
        local $?;
        eval { dbh()->do(qq{ALTER DATABASE "$dbname" RESET synchronous_commit}) };
        Retell::nginx_stop($nginx2) if $nginx2;
        if ($bouncer{pid}) {
            kill 'TERM', $bouncer{pid};
            waitpid $bouncer{pid}, 0;
        }
        for my $c (@nodes) {
            next unless -f "$c->{dir}/postmaster.pid";
            eval { run_cmd("$bindir/pg_ctl", '-D', $c->{dir}, '-m', 'immediate', '-w', 'stop') };
        }
        system('rm', '-rf', $base) if $base;
    }
}

# -- the tests

sub attempts { return map { @{ $_->{attempts} } } @{ $_[0]{deliveries} } }

# the lines of nginx's log since the test began that hold $pat: none
sub no_error_log {
    my ($name, $pat) = @_;
    my @hits = grep { index($_, $pat) >= 0 } split /\n/, block_log();
    is(scalar @hits, 0, "$name: no \"$pat\" line in error.log")
        or diag(join "\n", @hits[0 .. ($#hits < 9 ? $#hits : 9)]);
}

# One test: an empty database, a log mark, the backend of $o{backend}
# ('ha': the HA pair, nginx given both hosts; 'bouncer': PgBouncer in front
# of the suite's cluster, and an SMTP sink; none: the suite's cluster), its
# nginx (two workers, 256 connections each, info log) with the two
# endpoints, one real delivery answered $o{status} ('200' by default, or
# alternatives: '200|503'), the test, then
# no "[error]" in nginx's log if $o{no_error_log}.
sub scale_block {
    my ($name, %o) = @_;
    my $backend = $o{backend} // '';
    my $http = $backend eq 'ha' ? ha_http_config()
             : $backend eq 'bouncer' ? bouncer_http_config()
             : Retell::pg_http_config();
    my $status = $o{status} // '200';
    my $test = $o{test};
    block($name, workers => 2, worker_connections => 256, log_level => 'info',
          http => $http . ($o{extra_http_config} // ''),
          config => Retell::webhook_locations(),
          each => sub {
              if ($backend eq 'ha') {
                  ha_start();
              } elsif ($backend eq 'bouncer') {
                  bouncer_start();
                  $mail = Retell::smtp_start();
              }
          },
          serves => sub {
              my ($s) = post('/in', R('inbound-call_started'));
              like($s, qr/^(?:$status)$/, "$_[0]: a delivery answered $status");
          },
          test => sub {
              $test->(@_);
              no_error_log($_[0], '[error]') if $o{no_error_log};
          });
}

# Then identical deliveries posted to both instances at the same moment, as
# when Retell retries a delivery still in flight at the other host: one
# effect each.
scale_block('TEST 1: two nginx instances on one database, each attempt to either at random as a load balancer sends it: every delivery applied once, tickets as the rules say',
    no_error_log => 1,
    test => sub {
        my ($name) = @_;
        my $pa = $ENV{TEST_NGINX_SERVER_PORT};
        my $pb = $pa + 1;
        $nginx2 = Retell::nginx_start(port => $pa + 2, workers => 2,
            http => Retell::pg_http_config() . "server {\nlisten 127.0.0.1:$pb;\n"
                    . Retell::webhook_locations() . "}\n");
        my $r = Load::start(calls => 150, concurrency => 16, rate => 150, ports => [$pa, $pb])->wait;
        diag("$name: " . Load::summary($r));
        my %by_port;
        $by_port{$_->{port}}++ for attempts($r);
        my %split;
        for my $d (@{ $r->{deliveries} }) { $split{$d->{call_id}}{$_->{port}} = 1 for @{ $d->{attempts} } }
        my $both = grep { keys %{ $split{$_} } > 1 } keys %split;
        diag(sprintf "%s: %d attempts to nginx %d, %d to nginx %d; %d of %d calls had events applied by both",
             $name, $by_port{$pa} // 0, $pa, $by_port{$pb} // 0, $pb, $both, scalar keys %split);
        ok(($by_port{$pa} // 0) > 100 && ($by_port{$pb} // 0) > 100, "$name: both instances took deliveries");
        cmp_ok($both, '>', 50, "$name: most calls' events went to both instances");
        is(scalar(not_final_200($r)), 0, "$name: every delivery final 200");
        is(scalar(Load::refused_after($r, 0)), 0, "$name: no attempt refused");
        no_problems("$name: the database keeps the promises", Load::check_db($r));

        # the race: each delivery of 24 new calls to both instances at once
        my $prefix = $r->{prefix} . 'race_';
        my $race = Load::make_deliveries(calls => 24, prefix => $prefix, in => '/in', out => '/out');
        my @socks = map { my $d = $_; map { [ $d, time, Retell::post_start($d->{path}, $d->{body}, port => $_) ] } $pa, $pb } @$race;
        for my $s (@socks) {
            my ($d, $sent, $sock) = @$s;
            my ($status, $body) = Retell::post_finish($sock);
            push @{ $d->{attempts} }, { sent => $sent, answered => time, status => $status, body => $body };
        }
        my @fresh = map { scalar grep { $_->{body} =~ /"duplicate":false/ } @{ $_->{attempts} } } @$race;
        is(scalar(grep { $_->{status} != 200 } map { @{ $_->{attempts} } } @$race), 0,
           "$name: race: every one of the " . (2 * @$race) . " posts answered 200");
        is(scalar(grep { $_ != 1 } @fresh), 0, "$name: race: each delivery applied by exactly one instance, the other answered duplicate");
        no_problems("$name: race: the database keeps the promises", Load::check_db({ prefix => $prefix, deliveries => $race }));
        Retell::nginx_stop($nginx2);
        my $log2 = slurp("$nginx2->{dir}/logs/error.log");
        undef $nginx2;
        unlike($log2, qr/\[(error|alert|crit|emerg)\]/, "$name: no error in the second nginx's log");
    });

# The load is unpaced, 16 senders, so each nginx worker opens its whole pool
# (8 connections) to PgBouncer. PgBouncer 1.18 does not carry prepared
# statements in this mode: retell_postgres_prepare is off (TEST 3 with it on).
scale_block('TEST 2: through PgBouncer (transaction pooling, 4 server connections) under load, with email on: every delivery 200, the tables as the rules say, every email sent once',
    backend => 'bouncer',
    extra_http_config => "retell_postgres_prepare off;\n",
    no_error_log => 1,
    test => sub {
        my ($name) = @_;
        my $stats0 = { map { $_->[0] => $_ } @{ bouncer_admin('SHOW STATS') // [] } };
        my $r = Load::start(calls => 150, concurrency => 16)->wait;
        diag("$name: " . Load::summary($r));
        show_refused(Load::refused_after($r, 0));
        is(scalar(not_final_200($r)), 0, "$name: every delivery final 200");
        is(scalar(Load::refused_after($r, 0)), 0, "$name: no attempt refused");
        no_problems("$name: the database keeps the promises", Load::check_db($r));
        # every due email sent, each once (its Message-ID carries the row id)
        my $due = db_value(q{SELECT count(*) FROM retell.email_outbox});
        ok(wait_for(sub { db_value(q{SELECT count(*) FROM retell.email_outbox WHERE status = 'sent'}) == $due }, 30),
           "$name: all $due emails sent");
        my %ids;
        for my $e (@{ smtp_messages($mail) }) {
            my ($id) = slurp($e->{eml}) =~ /^Message-ID: <retell-outbox-(\d+)\./mi;
            $ids{$id // '?'}++;
        }
        is(scalar keys %ids, $due, "$name: one message per outbox row");
        is(scalar(grep { $_ != 1 } values %ids), 0, "$name: none received twice");
        # what PgBouncer saw: the module's connections multiplexed on its four
        my $clients = grep { $_->[1] eq 'postgres' && $_->[2] eq $dbname } @{ bouncer_admin('SHOW CLIENTS') // [] };
        my $servers = grep { $_->[2] eq $dbname } @{ bouncer_admin('SHOW SERVERS') // [] };
        my ($stats) = grep { $_->[0] eq $dbname } @{ bouncer_admin('SHOW STATS') // [] };
        my $xacts = $stats ? $stats->[1] - ($stats0->{$dbname} ? $stats0->{$dbname}[1] : 0) : 0;
        diag("$name: PgBouncer: $clients client connections from nginx on $servers server connections, $xacts transactions");
        cmp_ok($servers, '<=', 4, "$name: at most PgBouncer's 4 server connections");
        cmp_ok($clients, '>', $servers, "$name: more nginx connections than server connections: transaction pooling");
        # deliveries that waited together share a transaction (a batch): every
        # transaction that wrote them went through PgBouncer
        my $written = db_value(q{SELECT count(DISTINCT xmin::text) FROM retell.webhook_events});
        diag("$name: the deliveries were written in $written transactions");
        cmp_ok($xacts, '>=', $written, "$name: every delivery went through PgBouncer");
    });

# PgBouncer 1.18 hands each transaction to any server connection, so a
# statement prepared on one is missing on another (26000). The command that
# meets it fails before anything runs; it is applied again on another
# connection, this one is closed, and the worker sends its statements
# unnamed from then on. A statement's name is its text's checksum, so one
# already there from another client (42P05) is the same statement.  The
# first delivery may be the one that meets it first: 200 or 503.
scale_block('TEST 3: through PgBouncer in transaction mode with prepared statements left on: the first lost statement turns them off in that worker, the log says what to set; every delivery ends 200, applied once',
    backend => 'bouncer',
    status => '200|503',
    test => sub {
        my ($name) = @_;
        my $r = Load::start(calls => 60, concurrency => 8)->wait;
        diag("$name: " . Load::summary($r));
        show_refused(Load::refused_after($r, 0));
        is(scalar(not_final_200($r)), 0, "$name: every delivery final 200");
        no_problems("$name: the database keeps the promises", Load::check_db($r));
        my $log = block_log();
        like($log, qr/prepared statements lost on a connection .*SQLSTATE 26000.*sends its statements unnamed from now on.*retell_postgres_prepare off/,
             "$name: the log says why and what to set");
        my $flips = () = $log =~ /\[error\].*sends its statements unnamed from now on/g;
        cmp_ok($flips, '<=', 2, "$name: once per worker at most ($flips)");
        is(scalar(Load::refused_after($r, 0)), 0, "$name: none refused: each command refused on its statement's name was applied again");
    });

# nginx has both hosts, target_session_attrs=read-write: the standby is
# refused (read-only) until it is promoted.  Once 100 deliveries are in, the
# standby's link to the primary is stalled until 8 commits wait for it, then
# the primary is killed (SIGKILL, every process) and the link cut, the WAL
# in flight on it lost; the standby is promoted as soon as it has lost its
# primary.  With asynchronous replication those
# commits would have been answered 200 and lost (check_db: "answered 200
# but no webhook_events row").  The load is paced (150 deliveries a second,
# about 3 s) so fresh deliveries arrive during the failover and after it.
scale_block('TEST 4: (failover) the primary killed under load while its synchronous standby lags, the standby promoted: nginx moves to it, no 200 lost, Retell\'s retries end in 200',
    backend => 'ha',
    test => sub {
        my ($name) = @_;
        ha_failover($name, lag => 1);
    });

# The roles of TEST 4, swapped: the node promoted there is the primary, a
# new standby streams from it on the dead primary's port.  A delivery's
# budget is 2 s here, so refusals come sooner.
scale_block('TEST 5: (failover) a slower failover, after nginx has refused deliveries: the promoted standby killed under load, a new standby promoted once 16 deliveries were answered 503; Retell\'s retries end in 200',
    backend => 'ha',
    extra_http_config => "retell_postgres_timeout 2s;\n",
    test => sub {
        my ($name) = @_;
        my ($r, $refused) = ha_failover($name, calls => 240,
            promote_what => 'nginx refuses deliveries while there is no primary',
            promote_when => sub { ($_[0]->progress->{503} // 0) >= 16 });
        cmp_ok(scalar @$refused, '>=', 16, "$name: deliveries refused during the failover");
    });

done_testing();
