# Faults under load (SPEC sections 3 to 5): a Retell-like client (t/inc/Load.pm)
# sends the deliveries of many calls and retries every failure as Retell does,
# while real faults hit the database path (t/inc/Faults.pm: t/fault-proxy,
# t/blackhole, kill -9).  What must hold whatever happens: every 200 has its
# rows, nothing is applied twice, after the retries the tables hold what the
# rules say, and nothing sent once PostgreSQL accepts connections again is
# refused.
use lib 't/inc';
use Test::Nginx::Socket 'no_plan';
use Retell;
use Faults;
use Load;
use Time::HiRes qw(time);

sub R { Retell::sample(@_) }

master_on();
workers(2);
worker_connections(256);
log_level('info');          # debug logs of a few thousand requests slow nginx

# A 200 must survive a crash of PostgreSQL: the test cluster runs with
# synchronous_commit=off, which can lose the last commits on kill -9.  A
# database setting wins over the server's command line, for new sessions.
my ($dbname) = $Retell::PG =~ /dbname=(\S+)/;
dbh()->do(qq{ALTER DATABASE "$dbname" SET synchronous_commit = on});
END { local $?; eval { dbh()->do(qq{ALTER DATABASE "$dbname" RESET synchronous_commit}) } }

# the proxy runs for the whole file; blocks that want it point nginx at it
proxy_start();

my $preprocess = db_block_preprocessor();
add_block_preprocessor(sub { $preprocess->(@_) });

add_response_body_check(\&db_check_hook);

# no_problems, not_final_200, show_refused and stored come from t/inc/Load.pm

# statements waiting on a lock
sub waiting { return db_value(q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'}) }

# a lock that holds new deliveries in PostgreSQL until ->rollback, once
# $n of them wait on it (undef if they do not come)
sub hold_deliveries {
    my ($n) = @_;
    my $locker = lock_rows(q{LOCK TABLE retell.webhook_events IN SHARE ROW EXCLUSIVE MODE});
    return $locker if wait_for(sub { waiting() >= $n }, 10);
    $locker->rollback;
    return undef;
}

# a paced Retell-like load (150 deliveries a second, about 3 s), once
# $stored of its deliveries are in the database
sub paced_load {
    my ($name, $stored) = @_;
    my $h = Load::start(calls => 150, concurrency => 16, rate => 150);
    Test::More::ok(wait_for(sub { stored() >= $stored }, 30), "$name: the load is under way");
    return $h;
}

# the end of a load: what was refused, then what must hold whatever the
# fault: every delivery final 200 after the retries, the database as the
# rules say; returns the results
sub load_done {
    my ($name, $h, $diag) = @_;
    my $r = $h->wait;
    Test::More::diag("$name: " . ($diag ? $diag->() . '; ' : '') . Load::summary($r));
    show_refused(Load::refused_after($r, 0));
    Test::More::is(scalar(not_final_200($r)), 0, "$name: every delivery final 200 after the retries");
    no_problems("$name: the database keeps the promises", Load::check_db($r));
    return $r;
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: load without faults: every delivery 200 at the first attempt, the tables as the rules say
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ] ]
--- error_code: 200
--- db_check
my $r = Load::start(calls => 150, concurrency => 16)->wait;
Test::More::diag("$name: " . Load::summary($r));
is(scalar(::not_final_200($r)), 0, "$name: every delivery final 200");
is(scalar(grep { @{ $_->{attempts} } != 1 } @{ $r->{deliveries} }), 0, "$name: no retries needed");
::no_problems("$name: the database keeps the promises", Load::check_db($r));
--- no_error_log
[error]



=== TEST 2: (fault) every PostgreSQL connection reset by a proxy under load: Retell's retries end in 200, the tables as the rules say
The intended property, asserted strictly: PostgreSQL itself never stops
accepting connections, so nothing sent after the reset may be refused.
The load runs unpaced, so about 16 statements are in flight at the reset.
--- http_config eval
Faults::proxy_http_config()
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ] ]
--- error_code: 200
--- db_check
proxy_cmd('pass'); proxy_cmd('resume');
my $h = Load::start(calls => 150, concurrency => 16);
ok(wait_for(sub { ::stored() >= 120 }, 30), "$name: the load is under way");
my ($n) = proxy_cmd('reset') =~ /(\d+)/;
my $t_reset = time;
my $r = $h->wait;
Test::More::diag("$name: $n connections reset; " . Load::summary($r));
::show_refused(Load::refused_after($r, 0));
cmp_ok($n, '>', 0, "$name: the proxy reset the pool's connections");
is(scalar(::not_final_200($r)), 0, "$name: every delivery final 200 after the retries");
::no_problems("$name: the database keeps the promises", Load::check_db($r));
is(scalar(Load::refused_after($r, $t_reset)), 0, "$name: nothing sent after the reset is refused");



=== TEST 3: (fault) PostgreSQL killed with SIGKILL under load and restarted: Retell's retries end in 200, nothing refused once it is back
The intended property, asserted strictly: once PostgreSQL accepts
connections again, no delivery is refused.  The load is paced (150
deliveries a second, about 3 s) so fresh deliveries arrive during the
outage and after it; PostgreSQL stays down for 3 s, and at least until
nginx has refused as many deliveries as there are senders.
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ] ]
--- error_code: 200
--- db_check
my $h = Load::start(calls => 150, concurrency => 16, rate => 150);
ok(wait_for(sub { ::stored() >= 100 }, 30), "$name: the load is under way");
my @killed = pg_kill9();
my $t_kill = time;
# the outage: 3 s, and at least until nginx has refused as many
# deliveries as there are senders
ok(wait_for(sub { $h->progress->{refused} >= 16 && time - $t_kill >= 3 }, 30),
   "$name: nginx refuses deliveries while PostgreSQL is down");
my $t_start = time;
my $t_up = pg_start_timed();
my $r = $h->wait;
Test::More::diag(sprintf "%s: %d PostgreSQL processes killed, restarted after %.2f s, accepting %.2f s after that; %s",
                 $name, scalar @killed, $t_start - $t_kill, $t_up - $t_start, Load::summary($r));
my ($first) = sort { $a <=> $b } grep { $_ > $t_up } map { $_->{answered} }
              grep { $_->{status} == 200 } map { @{ $_->{attempts} } } @{ $r->{deliveries} };
Test::More::diag(sprintf "%s: first 200 answered %.3f s after PostgreSQL accepted connections",
                 $name, $first - $t_up) if $first;
Test::More::diag("$name: refused before PostgreSQL was back:");
::show_refused(grep { $_->{sent} <= $t_up } Load::refused_after($r, 0));
my @late = sort { $a->{sent} <=> $b->{sent} } Load::refused_after($r, $t_up);
Test::More::diag("$name: refused after PostgreSQL was back: " . scalar(@late)
                 . (@late ? sprintf(", the last sent %.2f s after", $late[-1]{sent} - $t_up) : ''));
::show_refused(@late);
# what PostgreSQL said to a delivery refused as "database error"
Test::More::diag("$name: $_") for @late ? grep { /apply failed/ } split /\n/, block_log() : ();
is(scalar(::not_final_200($r)), 0, "$name: every delivery final 200 after the retries");
::no_problems("$name: the database keeps the promises", Load::check_db($r));
is(scalar(@late), 0, "$name: nothing sent after PostgreSQL is back is refused");



=== TEST 4: (fault) an nginx worker killed with SIGKILL under load: the master starts another, Retell's retries end in 200, nothing applied twice
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ] ]
--- error_code: 200
--- db_check
my $h = ::paced_load($name, 100);
# deliveries held in PostgreSQL behind a lock, so the kill cuts some off:
# a worker has at most 8 statements in PostgreSQL (its pool), so past 10
# each of the two has some
my $locker = ::hold_deliveries(10);
ok($locker, "$name: deliveries in flight in both workers");
my ($master, @workers) = nginx_pids();
kill 'KILL', $workers[0];
ok(wait_for(sub { my (undef, @w) = nginx_pids(); @w == 2 && !grep { $_ == $workers[0] } @w }, 10),
   "$name: the master starts another worker");
$locker->rollback;
$locker->disconnect;
my $r = ::load_done($name, $h);
my @cut = grep { $_->{status} == 0 } map { @{ $_->{attempts} } } @{ $r->{deliveries} };
cmp_ok(scalar(@cut), '>', 0, "$name: the kill cut deliveries off mid-flight");



=== TEST 5: (fault) nginx -s reload twice under load: not one delivery refused, the old workers finish theirs and exit
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ] ]
--- error_code: 200
--- db_check
my $h = ::paced_load($name, 60);
my ($master, @old) = nginx_pids();
kill 'HUP', $master;
ok(wait_for(sub { ::stored() >= 200 }, 30), "$name: the load goes on");
my (undef, @mid) = nginx_pids();
kill 'HUP', $master;
my $r = ::load_done($name, $h);
ok(wait_for(sub { !grep { pid_alive($_) } @old, @mid }, 15), "$name: the old workers exit");
is(scalar(Load::refused_after($r, 0)), 0, "$name: no attempt refused or reset");
unlike(block_log(), qr/\[alert\]|open socket/, "$name: no alert");



=== TEST 6: (fault) nginx -s quit under load, then started again: every delivery it took is answered, Retell's retries end in 200
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ] ]
--- error_code: 200
--- db_check
my $h = ::paced_load($name, 100);
# deliveries held in PostgreSQL behind a lock when the quit comes
my $locker = ::hold_deliveries(10);
ok($locker, "$name: deliveries in flight");
my ($master) = nginx_pids();
kill 'QUIT', $master;
my $t_quit = time;
ok(wait_for(sub { block_log() =~ /gracefully shutting down/ }, 5), "$name: the workers are shutting down");
$locker->rollback;
$locker->disconnect;
ok(wait_for(sub { !pid_alive($master) }, 15), "$name: nginx exits gracefully");
my $t_gone = time;
my $root = $ENV{TEST_NGINX_SERVER_ROOT};
system($ENV{TEST_NGINX_BINARY} // '/usr/sbin/nginx', '-p', "$root/", '-c', "$root/conf/nginx.conf") == 0
    or die "nginx did not start again";
my $r = ::load_done($name, $h, sub { sprintf "nginx took %.2f s to exit", $t_gone - $t_quit });
# what nginx had taken when told to quit, it answered: nothing reset mid-answer
my @cut = grep { $_->{status} == 0 && $_->{sent} < $t_quit && $_->{answered} < $t_gone }
          map { @{ $_->{attempts} } } @{ $r->{deliveries} };
is(scalar(@cut), 0, "$name: no delivery in flight was cut off");
unlike(block_log(), qr/\[alert\]|open socket/, "$name: no alert");
