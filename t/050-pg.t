# The PostgreSQL connection pool (SPEC section 3, 503 rows): outages,
# timeouts behind row locks without blocking the worker, draining, the
# wait-queue bound, multi-host conninfo.
use lib 't/inc';
use Test::Nginx::Socket 'no_plan';
use Retell;
use Time::HiRes qw(time sleep);


sub R { Retell::sample(@_) }
sub C { Retell::with_call_id(@_) }

my $preprocess = db_block_preprocessor(config => sub {
    webhook_locations(in => $_[0]) . "location = /fast { return 200 \"fast\\n\"; }\n";
});
add_block_preprocessor(sub { $preprocess->(@_) });

add_response_body_check(\&db_check_hook);

no_shuffle();
run_tests();

# statements waiting for a row lock; deliveries that waited for a
# connection (a debug line each)
sub lock_waiters { return db_value(q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'}) }
sub waiting { return scalar(() = Retell::block_log() =~ /retell postgres: waiting for a connection/g) }

__DATA__

=== TEST 1: PostgreSQL stopped: 503 with Retry-After within the timeout; back: 200, no reload
--- extra_config
retell_postgres_timeout 2s;
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ] ]
--- error_code: 200
--- db_check
pg_stop();
my ($s, $b, $t, $head) = post('/in', ::R('inbound-call_ended'));
is($s, 503, "$name: 503 while the database is down");
like($head, qr/\r\nRetry-After: \d+/i, "$name: Retry-After");
like($b, qr/^\{"error":"unavailable","message":"/, "$name: JSON error");
cmp_ok($t, '<', 2.5, "$name: answered within the timeout");
($s, undef, $t) = post('/in', ::R('inbound-call_ended'));
is($s, 503, "$name: still 503");
cmp_ok($t, '<', 2.5, "$name: again within the timeout");
pg_start();
# wait for the condition: the backoff lets a new connection through
my $deadline = time + 20;
do { ($s, $b) = post('/in', ::R('inbound-call_ended')); sleep 0.1 if $s != 200 }
    until $s == 200 || time > $deadline;
is($s, 200, "$name: 200 again after the restart, without a reload");
like($b, qr/"event":"call_ended".*"duplicate":false/, "$name: applied once");
is(db_value(q{SELECT call_status FROM retell.calls}), 'ended', "$name: stored");
like(block_log(), qr/\[error\] .*retell postgres connection (lost|failed)/, "$name: the loss is logged");



=== TEST 2: a statement stuck behind a row lock: 503 at the timeout, the worker keeps serving, nothing written
--- extra_config
retell_postgres_timeout 1s;
--- extra_http_config
retell_postgres_pool 1;
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ] ]
--- error_code: 200
--- db_check
my $locker = lock_rows(q{SELECT 1 FROM retell.calls WHERE call_id = 'call_5c1f2b7e8a9d4e0fb3c6a1d2e4f50617' FOR UPDATE});
my $t0 = time;
my $sock = post_start('/in', ::R('inbound-call_ended'));
ok(wait_for(sub { ::lock_waiters() }, 5), "$name: the statement waits for the lock");
my ($fs, $fb, $ft) = get('/fast');
is($fs, 200, "$name: another location answers");
cmp_ok($ft, '<', 0.3, "$name: at once, while the delivery waits");
my ($s, $b, $head) = post_finish($sock);
my $t = time - $t0;
is($s, 503, "$name: 503 at the timeout");
like($head, qr/\r\nRetry-After: /i, "$name: Retry-After");
cmp_ok($t, '>=', 0.9, "$name: not before the timeout");
cmp_ok($t, '<', 2, "$name: not long after it");
# the one connection drains its cancelled statement, then serves again
my ($s2, $b2) = post('/in', ::C(::R('inbound-call_started'), 'other-call'));
is($s2, 200, "$name: the pool's only connection serves the next delivery");
$locker->rollback;
$locker->disconnect;
is(db_value(q{SELECT call_status FROM retell.calls WHERE call_id = 'call_5c1f2b7e8a9d4e0fb3c6a1d2e4f50617'}), 'ongoing', "$name: call unchanged");
is(db_value(q{SELECT count(*) FROM retell.webhook_events WHERE event = 'call_ended'}), 0, "$name: rolled back");
my ($s3, $b3) = post('/in', ::R('inbound-call_ended'));
like($b3, qr/"duplicate":false/, "$name: the retry is applied, not a duplicate");



=== TEST 3: a full wait queue answers 503 at once
--- extra_config
retell_postgres_timeout 2s;
--- extra_http_config
retell_postgres_pool 1;
retell_postgres_batch 2;
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ] ]
--- error_code: 200
--- db_check
my $locker = lock_rows(q{SELECT 1 FROM retell.calls FOR UPDATE});
# one statement holds the only connection, 32 wait (16 statements of 2
# deliveries per connection)
my @socks = (post_start('/in', ::R('inbound-call_ended')));
ok(wait_for(sub { ::lock_waiters() }, 5), "$name: the first statement waits for the lock");
push @socks, post_start('/in', ::C(::R('inbound-call_started'), "wait$_")) for 1 .. 32;
ok(wait_for(sub { ::waiting() >= 32 }, 5), "$name: 32 wait for a connection");
my ($s, $b, $t) = post('/in', ::C(::R('inbound-call_started'), 'one-too-many'));
is($s, 503, "$name: over the bound");
like($b, qr/database busy/, "$name: says why");
cmp_ok($t, '<', 0.5, "$name: at once");
$locker->rollback;
$locker->disconnect;
my @res = map { [ post_finish($_) ] } @socks;
is(scalar(grep { $_->[0] == 200 || $_->[0] == 503 } @res), 33, "$name: every waiting delivery is answered");
is(scalar(grep { $_->[0] == 200 } @res[1 .. 32]), 32, "$name: the 32 within the bound are applied");
like(block_log(), qr/too many deliveries waiting for a database connection/, "$name: logged");



=== TEST 4: multi-host conninfo: first host dead, second alive
--- http_config eval
my $pg = $Retell::PG;
$pg =~ s/host=127\.0\.0\.1/host=127.0.0.1,127.0.0.1/;
$pg =~ s/port=(\d+)/port=1,$1/;
qq{retell_postgres "$pg target_session_attrs=read-write";\n}
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ] ]
--- error_code: 200
--- response_body_like: "ticket_status":"new"
--- no_error_log
[error]



=== TEST 5: the client goes away mid-statement: the delivery completes, the connection is drained first
--- extra_config
retell_postgres_timeout 3s;
--- extra_http_config
retell_postgres_pool 1;
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ] ]
--- error_code: 200
--- db_check
my $locker = lock_rows(q{SELECT 1 FROM retell.calls FOR UPDATE});
my $sock = post_start('/in', ::R('inbound-call_ended'));
ok(wait_for(sub { ::lock_waiters() }, 5), "$name: the statement waits for the lock");
close $sock;                         # the client gives up
my $w0 = ::waiting();
my $next = post_start('/in', ::C(::R('inbound-call_started'), 'next-call'));
ok(wait_for(sub { ::waiting() > $w0 }, 5), "$name: the next one waits for the connection");
$locker->rollback;                   # the first statement can finish now
$locker->disconnect;
my ($s, $b) = post_finish($next);
is($s, 200, "$name: the next delivery is served after the first one drained");
wait_for(sub { db_value(q{SELECT count(*) FROM retell.webhook_events WHERE event = 'call_ended'}) }, 5);
is(db_value(q{SELECT call_status FROM retell.calls WHERE call_id = 'call_5c1f2b7e8a9d4e0fb3c6a1d2e4f50617'}), 'ended', "$name: accepted data is kept");



=== TEST 6: a host name in the conninfo is resolved at configuration load, not by the worker
--- http_config eval
my $pg = $Retell::PG;
$pg =~ s/host=127\.0\.0\.1/host=localhost/;
qq{retell_postgres "$pg";\n}
--- log_level: debug
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ] ]
--- error_code: 200
--- error_log
retell postgres connected to "localhost:
--- no_error_log
[error]
