# Batches (issue 10, ngx_http_retell_pg_batch.c): deliveries that wait for
# a connection together are applied in one statement, one transaction and
# one commit.  What must hold: each is answered its own outcome; a batch
# whose statement fails costs no delivery (each is applied alone); members
# that time out leave the batch, and its statement is drained; a retry
# after a 503 is a duplicate, never a second application.  Each test makes
# the queue form deterministically: the pool's one connection is held by a
# delivery waiting for a row lock, the others queue behind it (the debug
# log says when), then the lock is released.
#
# A plain Test::More program: each test orders locks, stalls and requests
# around the pool, so it runs its own nginx (t/inc/NginxRun.pm: one
# worker, debug log, where "waiting for a connection" is a debug line).
use strict;
use warnings;
use lib 't/inc';
use Test::More;
use Retell;
use Faults;
use NginxRun;
use Time::HiRes qw(time);

sub R { Retell::sample(@_) }
sub B { Retell::event_body(@_) }
sub C { Retell::with_call_id(@_) }

proxy_start();

# one test: the proxy passing everything, PostgreSQL's log marked, the two
# endpoints (each with extra_config) and /fast
sub batch_block {
    my ($name, %o) = @_;
    webhook_block($name, each => sub { proxy_cmd('pass'); proxy_cmd('resume'); pg_log_mark() }, %o);
}

# the pool's one connection held: a delivery of call $id waits for a row
# lock; returns the locking session and the waiting client
sub hold_connection {
    my ($id) = @_;
    my ($s) = post('/in', C(R('inbound-call_started'), $id));
    Test::More::is($s, 200, "$::name: $id started");
    my $locker = lock_rows(qq{SELECT 1 FROM retell.calls WHERE call_id = '$id' FOR UPDATE});
    my $sock = post_start('/in', C(R('inbound-call_ended'), $id));
    Test::More::ok(wait_for(sub { db_value(q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'}) }, 5),
                   "$::name: the connection is held");
    return ($locker, $sock);
}

sub waiting { return scalar(() = block_log() =~ /retell postgres: waiting for a connection/g) }

# the connection held, then these bodies posted to /in, waiting behind it;
# returns the locking session, the held client and the waiting ones
sub queue_behind_held {
    my (@bodies) = @_;
    my ($locker, $first) = hold_connection('call_batch_hold');
    my $w0 = waiting();
    my @socks = map { post_start('/in', $_) } @bodies;
    Test::More::ok(wait_for(sub { waiting() >= $w0 + @bodies }, 5),
                   "$::name: " . @bodies . " wait for the connection");
    return ($locker, $first, @socks);
}

sub started { return B('call_started', $_[0], inbound => 1, start_timestamp => Retell::now_ms()) }

# posts a call_started for each id, each of another customer: no row in
# common with the held delivery, whose transaction holds its customer's
# row while it waits; returns the clients
sub post_unrelated {
    my $n = 2000;
    return map { post_start('/in', B('call_started', $_, inbound => 1, start_timestamp => Retell::now_ms(),
                                     from_number => sprintf('+1415555%04d', ++$n))) } @_;
}

sub release { $_[0]->rollback; $_[0]->disconnect }

# the lock released: the held client of hold_connection() is answered 200;
# $what prefixes the assertion's name
sub release_held {
    my ($locker, $first, $what) = @_;
    release($locker);
    Test::More::is((post_finish($first))[0], 200, "$::name: " . ($what // '') . "the held delivery applied");
}

# the events applied of the calls LIKE $pattern
sub applied {
    return db_value(q{SELECT count(*) FROM retell.webhook_events WHERE call_id LIKE ?}, $_[0]);
}

# how many of these clients were answered $status (each answer is read)
sub answered {
    my ($status, @socks) = @_;
    return scalar grep { (post_finish($_))[0] == $status } @socks;
}

# the transactions that wrote the events of the calls LIKE $pattern
sub transactions {
    return db_value(q{SELECT count(DISTINCT xmin::text) FROM retell.webhook_events WHERE call_id LIKE ?}, $_[0]);
}

# the held delivery of hold_connection($id), a call_ended, is applied
sub held_applied {
    return db_value(q{SELECT count(*) FROM retell.webhook_events WHERE call_id = ? AND event = 'call_ended'}, $_[0]);
}

# three deliveries queued behind the held one; once it is answered the
# path toward the server stalls, so their batch never arrives while they
# wait: each is answered 503 at its budget; returns their bodies
sub stall_batch {
    my @bodies = map { started("call_batch_$_") } 1 .. 3;
    my ($locker, $first, @socks) = queue_behind_held(@bodies);
    proxy_cmd('stall-up');
    release_held($locker, $first);
    Test::More::is(answered(503, @socks), 3, "$::name: the three answered 503 at their time");
    return @bodies;
}

# A deferred constraint trigger that fails the transaction at COMMIT, after
# the statement's rows were sent, for the calls LIKE 'commitfail%'
sub fail_at_commit {
    dbh()->do(q{CREATE OR REPLACE FUNCTION public.retell_test_fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.call_id LIKE 'commitfail%' THEN
                        RAISE EXCEPTION 'deferred check failed for %', NEW.call_id USING ERRCODE = '23514';
                    END IF;
                    RETURN NULL;
                END $$});
    dbh()->do(q{DROP TRIGGER IF EXISTS retell_test_fail_at_commit ON retell.webhook_events});
    dbh()->do(q{CREATE CONSTRAINT TRIGGER retell_test_fail_at_commit AFTER INSERT ON retell.webhook_events
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.retell_test_fail_at_commit()});
}

sub no_fail_at_commit { dbh()->do(q{DROP TRIGGER IF EXISTS retell_test_fail_at_commit ON retell.webhook_events}) }

# The module's connection logs its statements (t/059-prepared.t): the batch
# is a prepared statement too.
batch_block('TEST 1: deliveries that waited together: one transaction per retell_postgres_batch of them, each answered its own ticket',
    http => do {
        Retell::pg_logging_http_config() . "retell_postgres_pool 1;\nretell_postgres_batch 4;\n"
    },
    extra_config => <<'_EOC_',
retell_postgres_timeout 10s;
_EOC_
    test => sub {
        my ($name) = @_;
        my @ids = map { "call_batch_$_" } 1 .. 5;
        my ($locker, $first, @socks) = queue_behind_held(map { started($_) } @ids);
        release_held($locker, $first);
        my @r = map { [ post_finish($_) ] } @socks;
        is(scalar(grep { $_->[0] == 200 } @r), 5, "$name: each answered 200");
        for my $i (0 .. $#ids) {
            my ($ticket) = $r[$i][1] =~ /"ticket_id":(\d+)/;
            is(db_value(q{SELECT call_id FROM retell.tickets WHERE id = ?}, $ticket // 0), $ids[$i],
               "$name: answer $i carries its own call's ticket");
            like($r[$i][1], qr/"call_id":"$ids[$i]".*"duplicate":false/, "$name: answer $i is its own");
        }
        is(transactions('call_batch__'), 2,
           "$name: the five committed in two transactions");
        is(db_value(q{SELECT count(*) FROM retell.webhook_events WHERE call_id LIKE 'call_batch__' GROUP BY xmin::text ORDER BY 1 DESC LIMIT 1}), 4,
           "$name: the first four together");
        is(applied('call_batch__'), 5, "$name: five events");
        is(db_value(q{SELECT count(*) FROM retell.tickets WHERE call_id LIKE 'call_batch__' AND status = 'new'}), 5, "$name: five tickets");
        like(block_log(), qr/retell postgres: batch of 4,/, "$name: a batch of four");
        is(pg_logged(qr/execute retell_[0-9a-f]{8}: SELECT s\.\*, 0 FROM .* UNION ALL SELECT s\.\*, 3 FROM/), 1,
           "$name: the batch executed as a prepared statement");
        is(pg_logged(qr/parse retell_[0-9a-f]{8}: SELECT s\.\*, 0 FROM/), 1, "$name: prepared once");
    });


batch_block('TEST 2: a member stuck on another session\'s row lock: the batch fails fast, each is applied alone, the others are not held up',
    http => do {
        Retell::pg_http_config() . "retell_postgres_pool 1;\n"
    },
    extra_config => <<'_EOC_',
retell_postgres_timeout 10s;
_EOC_
    test => sub {
        my ($name) = @_;
        my ($s) = post('/in', C(R('inbound-call_started'), 'call_batch_locked'));
        is($s, 200, "$name: the locked call started");
        my $other = lock_rows(q{SELECT 1 FROM retell.calls WHERE call_id = 'call_batch_locked' FOR UPDATE});
        my ($holder, $first, @socks) = queue_behind_held(started('call_batch_1'),
                                                         C(R('inbound-call_ended'), 'call_batch_locked'),
                                                         started('call_batch_3'));
        release_held($holder, $first);
        ok(wait_for(sub { block_log() =~ /a batch of 3 deliveries failed, applying each alone: .*lock timeout/ }, 5),
           "$name: the batch failed on the lock, at once");
        my $t0 = time;
        my ($s1, $b1) = post_finish($socks[0]);
        is($s1, 200, "$name: the first member applied alone while the lock is held");
        cmp_ok(time - $t0, '<', 2, "$name: without waiting for the lock");
        ok(!held_applied('call_batch_locked'),
           "$name: the locked member not applied yet");
        release($other);
        my @r = map { [ post_finish($_) ] } @socks[1, 2];
        is($r[0][0], 200, "$name: the locked member applied once its lock is gone");
        is($r[1][0], 200, "$name: the member behind it applied");
        is(db_value(q{SELECT count(*) FROM retell.webhook_events WHERE call_id IN ('call_batch_1', 'call_batch_3', 'call_batch_locked')}), 4,
           "$name: every delivery stored once");
        is(db_value(q{SELECT count(DISTINCT xmin::text) FROM retell.webhook_events WHERE call_id IN ('call_batch_1', 'call_batch_3') OR (call_id = 'call_batch_locked' AND event = 'call_ended')}), 3,
           "$name: each in its own transaction");
        is(db_value(q{SELECT status FROM retell.tickets WHERE call_id = 'call_batch_locked'}), 'new', "$name: the locked call's ticket as the rules say");
    });


# Sent unnamed (retell_postgres_prepare off): the statement itself is what
# the proxy holds. Prepared, TEST 4.
batch_block('TEST 3: a batch whose statement never reaches the server: its members time out (503) and leave; the statement is drained; retries are duplicates',
    http => do {
        Faults::proxy_http_config() . "retell_postgres_pool 1;\nretell_postgres_prepare off;\nclient_body_buffer_size 30m;\n"
    },
    extra_config => <<'_EOC_',
retell_postgres_timeout 2s;
_EOC_
    test => sub {
        my ($name) = @_;
        my @bodies = stall_batch();
        ok(!applied('call_batch__'), "$name: nothing applied while stalled");
        proxy_cmd('resume');
        # the batch reaches the server late and commits: a 503 means "not confirmed"
        ok(wait_for(sub { applied('call_batch__') == 3 }, 5),
           "$name: the drained batch committed once it arrived");
        my @again = map { [ post('/in', $_) ] } @bodies;
        is(scalar(grep { $_->[0] == 200 && $_->[1] =~ /"duplicate":true/ } @again), 3, "$name: the retries are duplicates, answered 200");
        my ($s) = post('/in', started('call_batch_next'));
        is($s, 200, "$name: the connection serves again");
        is(applied('call_batch_%'), 6, "$name: nothing applied twice");
        unlike(block_log(), qr/\[alert\]|cancelled command was/, "$name: the statement drained in time");
    });


# Prepared statements: the batch's first run on the connection sends
# PREPARE first, and the command only once PREPARE is answered. The members
# are gone by then, so nothing answered 503 is committed behind them.
batch_block('TEST 4: a batch whose PREPARE never reaches the server: its members time out (503) and leave; the statement is never executed; retries are applied, once',
    http => do {
        Faults::proxy_http_config() . "retell_postgres_pool 1;\nclient_body_buffer_size 30m;\n"
    },
    extra_config => <<'_EOC_',
retell_postgres_timeout 2s;
_EOC_
    test => sub {
        my ($name) = @_;
        my @bodies = stall_batch();
        proxy_cmd('resume');
        my @again = map { [ post('/in', $_) ] } @bodies;
        is(scalar(grep { $_->[0] == 200 && $_->[1] =~ /"duplicate":false/ } @again), 3, "$name: the retries are applied, answered 200");
        is(applied('call_batch__'), 3, "$name: each applied once");
        unlike(block_log(), qr/\[alert\]|cancelled command was/, "$name: PREPARE drained in time");
    });


batch_block('TEST 5: retell_postgres_batch 1 turns batches off',
    http => do {
        Retell::pg_http_config() . "retell_postgres_pool 1;\nretell_postgres_batch 1;\n"
    },
    extra_config => <<'_EOC_',
retell_postgres_timeout 10s;
_EOC_
    test => sub {
        my ($name) = @_;
        my ($locker, $first, @socks) = queue_behind_held(map { started("call_batch_$_") } 1 .. 3);
        release_held($locker, $first);
        is(answered(200, @socks), 3, "$name: each answered 200");
        is(transactions('call_batch__'), 3,
           "$name: one transaction each");
        unlike(block_log(), qr/batch of/, "$name: no batch");
    });


# The held delivery's statement waits on a row lock for longer than the
# hold: after the hold the three behind it go, in one statement, on the
# pool's second connection, while the lock is still held.
batch_block('TEST 6: retell_postgres_batch_hold: deliveries that arrive while a statement is in flight wait for it, up to the hold, then go together on another connection',
    http => do {
        Retell::pg_http_config() . "retell_postgres_pool 2;\nretell_postgres_batch_hold 2s;\n"
    },
    extra_config => <<'_EOC_',
retell_postgres_timeout 10s;
_EOC_
    test => sub {
        my ($name) = @_;
        my ($locker, $first) = hold_connection('call_batch_hold');
        my $t0 = time;
        my @socks = post_unrelated(map { "call_batch_$_" } 1 .. 3);
        # nothing applied for the hold's first second, though a connection could be opened
        wait_for(sub { applied('call_batch__') }, 1 - (time - $t0));
        is(applied('call_batch__'), 0,
           "$name: nothing applied within the hold, though a connection could be opened");
        is(answered(200, @socks), 3, "$name: each answered 200 once the hold ended");
        cmp_ok(time - $t0, '<', 5, "$name: at the hold, not at the lock's release");
        is(transactions('call_batch__'), 1,
           "$name: the three in one transaction");
        is(held_applied('call_batch_hold'), 0,
           "$name: while the held delivery still waits for its lock");
        release_held($locker, $first);
        is(db_value(q{SELECT count(*) FROM retell.tickets WHERE call_id LIKE 'call_batch__' AND status = 'new'}), 3, "$name: three tickets");
    });


batch_block('TEST 7: the hold ends as soon as the statement in flight is answered; half a batch waiting does not wait',
    http => do {
        Retell::pg_http_config() . "retell_postgres_pool 2;\nretell_postgres_batch_hold 30s;\n"
    },
    extra_config => <<'_EOC_',
retell_postgres_timeout 60s;
_EOC_
    test => sub {
        my ($name) = @_;
        my ($locker, $first) = hold_connection('call_batch_hold');
        my $w0 = waiting();
        my @socks = post_unrelated(map { "call_batch_$_" } 1 .. 3);
        wait_for(sub { waiting() >= $w0 + 3 }, 5) or diag("$name: the three not seen waiting");
        # held, not applied, for as long as one looks: half a second
        wait_for(sub { applied('call_batch__') }, 0.5);
        is(applied('call_batch__'), 0, "$name: the three wait");
        my $t0 = time;
        release_held($locker, $first);
        is(answered(200, @socks), 3, "$name: each answered 200");
        cmp_ok(time - $t0, '<', 5, "$name: once the statement in flight was answered, not at the hold");
        is(transactions('call_batch__'), 1,
           "$name: the three in one transaction");
        # half of retell_postgres_batch (8) waiting goes at once, hold or not
        ($locker, $first) = hold_connection('call_batch_hold2');
        $t0 = time;
        @socks = post_unrelated(map { "call_batch_h$_" } 1 .. 4);
        is(answered(200, @socks), 4, "$name: four waiting: each answered 200");
        cmp_ok(time - $t0, '<', 5, "$name: four waiting: without waiting for the hold or the lock");
        is(held_applied('call_batch_hold2'), 0,
           "$name: four waiting: while the held delivery still waits for its lock");
        cmp_ok(transactions('call_batch_h_'), '<=', 2,
           "$name: four waiting: in at most two transactions");
        release_held($locker, $first, 'four waiting: ');
    });


batch_block('TEST 8: retell_postgres_batch_hold 0: a delivery that arrives while a statement is in flight starts another at once',
    http => do {
        Retell::pg_http_config() . "retell_postgres_pool 2;\nretell_postgres_batch_hold 0;\n"
    },
    extra_config => <<'_EOC_',
retell_postgres_timeout 10s;
_EOC_
    test => sub {
        my ($name) = @_;
        my ($locker, $first) = hold_connection('call_batch_hold');
        my $t0 = time;
        my @socks = post_unrelated(map { "call_batch_$_" } 1 .. 3);
        is(answered(200, @socks), 3, "$name: each answered 200");
        cmp_ok(time - $t0, '<', 1, "$name: at once, on the other connection");
        is(held_applied('call_batch_hold'), 0,
           "$name: while the held delivery still waits for its lock");
        release_held($locker, $first);
    });


# A deferred constraint trigger raises when the transaction commits: the
# error reaches the client as a second result, after the row.
batch_block('TEST 9: an error raised at COMMIT, after the statement\'s rows: the delivery is answered 503, never 200, and nothing of it is kept',
    http => do {
        Retell::pg_http_config() . "retell_postgres_pool 1;\n"
    },
    extra_config => <<'_EOC_',
retell_postgres_timeout 5s;
_EOC_
    test => sub {
        my ($name) = @_;
        fail_at_commit();
        my ($s, $b) = post('/in', started('commitfail-1'));
        is($s, 503, "$name: answered 503");
        like($b, qr/"database error"/, "$name: as a database error");
        is(applied('commitfail-1'), 0, "$name: not stored");
        like(block_log(), qr/retell call "commitfail-1": apply failed: .*deferred check failed for commitfail-1/,
             "$name: PostgreSQL's reason in the log");
        unlike(block_log(), qr/"commitfail-1": call_started applied/, "$name: never logged applied");
        ($s) = post('/in', started('call_batch_ok'));
        is($s, 200, "$name: the connection serves the next delivery");
        no_fail_at_commit();
        ($s) = post('/in', started('commitfail-1'));
        is($s, 200, "$name: applied once the trigger is gone");
        is(applied('commitfail-1'), 1, "$name: stored once");
    });


batch_block('TEST 10: a batch whose commit fails: no member is answered 200 for it; each is applied alone, the innocent ones committed',
    http => do {
        Retell::pg_http_config() . "retell_postgres_pool 1;\n"
    },
    extra_config => <<'_EOC_',
retell_postgres_timeout 10s;
_EOC_
    test => sub {
        my ($name) = @_;
        fail_at_commit();
        my @ids = ('call_batch_1', 'call_batch_2', 'commitfail-2', 'call_batch_4');
        my ($locker, $first, @socks) = queue_behind_held(map { started($_) } @ids);
        release_held($locker, $first);
        my @r = map { [ post_finish($_) ] } @socks;
        is_deeply([ map { $_->[0] } @r ], [200, 200, 503, 200], "$name: the failing member 503, the others 200");
        like(block_log(), qr/a batch of 4 deliveries failed, applying each alone: .*deferred check failed for commitfail-2/,
             "$name: the batch failed at its commit");
        is(applied('call_batch__'), 3, "$name: the others stored");
        is(transactions('call_batch__'), 3, "$name: each in its own transaction");
        is(applied('commitfail-2'), 0, "$name: the failing member not stored");
        no_fail_at_commit();
    });


# Serialization failures (40001), raised during the statement or at its
# commit, are answered 503 and the retry is applied. Batches off: each
# delivery its own transaction, all of them concurrent.
batch_block('TEST 11: SERIALIZABLE: the events of calls of one customer all at once, retried as Retell does; every 200 is stored, nothing twice',
    http => do {
        "retell_postgres \"$Retell::PG options='-c default_transaction_isolation=serializable'\";\nclient_body_buffer_size 30m;\nretell_postgres_pool 6;\nretell_postgres_batch 1;\n"
    },
    extra_config => <<'_EOC_',
retell_postgres_timeout 5s;
_EOC_
    test => sub {
        my ($name) = @_;
        my @bodies = map { my $id = "call_ser_$_";
                           (B('call_started', $id, inbound => 1, start_timestamp => 1733000000000 + $_),
                            B('call_ended', $id, inbound => 1, start_timestamp => 1733000000000 + $_,
                              end_timestamp => 1733000060000 + $_, disconnection_reason => 'user_hangup'),
                            B('call_analyzed', $id, inbound => 1, start_timestamp => 1733000000000 + $_,
                              call_analysis => { call_summary => "Call $_", custom_analysis_data => { action_required => 'false' } })) } 1 .. 6;
        my %ok;
        my ($round, $refused) = (0, 0);
        while (%ok < @bodies && $round++ < 8) {
            my @todo = grep { !$ok{$_} } 0 .. $#bodies;
            my @r = concurrent_posts(map { ['/in', $bodies[$_]] } @todo);
            for my $k (0 .. $#todo) {
                if ($r[$k][0] == 200) { $ok{ $todo[$k] } = 1 } else { $refused++ }
            }
        }
        is(scalar(keys %ok), scalar(@bodies), "$name: every delivery answered 200 in the end");
        is(applied('call_ser_%'), scalar(@bodies), "$name: every one stored, once");
        is(db_value(q{SELECT count(*) FROM retell.calls WHERE call_id LIKE 'call_ser_%' AND call_summary LIKE 'Call %'}), 6, "$name: each call complete");
        is(db_value(q{SELECT count(*) FROM retell.tickets WHERE call_id LIKE 'call_ser_%' AND status = 'closed'}), 6, "$name: each ticket as the rules say");
        is(db_value(q{SELECT count(*) FROM retell.customers}), 1, "$name: one customer");
        ok($refused == 0 || block_log() =~ /could not serialize/, "$name: the refusals were serialization failures");
        diag("$name: $refused refused in $round rounds, " . scalar(() = block_log() =~ /during commit attempt/g) . " at commit");
    });


# Member 0 takes 600 ms (a trigger sleeps); member 1, from a location with
# a 1 s budget, has about 400 ms left when the batch goes. Its client is
# answered 503 at its time, and its call's check, counted from the
# statement's start, rolls the batch back; the others are applied alone.
batch_block('TEST 12: a batch\'s budget is the whole statement\'s: a member whose time runs out while the members before it run is not committed behind its 503',
    http => do {
        Retell::pg_http_config() . "retell_postgres_pool 1;\n"
    },
    config => do {
        Retell::webhook_locations(in => 'retell_postgres_timeout 10s;')
        . "location = /short { retell_webhook inbound; retell_webhook_secret $Retell::SECRET; retell_postgres_timeout 1s; }\n"
        . "location = /fast { return 200 \"fast\\n\"; }\n"
    },
    test => sub {
        my ($name) = @_;
        dbh()->do(q{CREATE OR REPLACE FUNCTION public.retell_test_slow() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN
                        IF NEW.call_id LIKE 'call_batch_slow%' THEN PERFORM pg_sleep(0.6); END IF;
                        RETURN NEW;
                    END $$});
        dbh()->do(q{CREATE TRIGGER retell_test_slow BEFORE INSERT ON retell.webhook_events
                    FOR EACH ROW EXECUTE FUNCTION public.retell_test_slow()});
        my ($locker, $first) = hold_connection('call_batch_hold');
        my $w0 = waiting();
        my @socks = (post_start('/in', started('call_batch_slow')));
        ok(wait_for(sub { waiting() >= $w0 + 1 }, 5), "$name: the slow one waits");
        my $t_short = time;
        push @socks, post_start('/short', started('call_batch_short'));
        push @socks, post_start('/in', started('call_batch_3'));
        ok(wait_for(sub { waiting() >= $w0 + 3 }, 5), "$name: three wait");
        # not a wait for a condition: the short one's budget is spent on purpose
        Time::HiRes::sleep(0.6 - (time - $t_short)) if time - $t_short < 0.6;
        release_held($locker, $first);
        my @r = map { [ post_finish($_) ] } @socks;
        is_deeply([ map { $_->[0] } @r ], [200, 503, 200], "$name: the short one 503 at its time, the others 200");
        is(applied('call_batch_short'), 0, "$name: the 503 is not committed behind its client");
        is(applied('call_batch_slow') + applied('call_batch_3'), 2, "$name: the others stored");
        like(block_log(), qr/a batch of \d deliveries failed, applying each alone: .*call_batch_short took longer than/,
             "$name: the batch rolled back on the short one's budget");
        dbh()->do(q{DROP TRIGGER retell_test_slow ON retell.webhook_events});
    });


# Another session holds the customers table and then asks for the events
# table the delivery has written to: PostgreSQL ends the delivery's
# transaction after deadlock_timeout (1 s). Nothing of it was applied; it is
# sent again and applied.
batch_block('TEST 13: a delivery chosen as a deadlock\'s victim is applied again, once, before its client hears of it',
    http => do {
        Retell::pg_http_config() . "retell_postgres_pool 1;\n"
    },
    extra_config => <<'_EOC_',
retell_postgres_timeout 8s;
_EOC_
    test => sub {
        my ($name) = @_;
        my $other = lock_rows(q{LOCK TABLE retell.customers IN ACCESS EXCLUSIVE MODE});
        my $sock = post_start('/in', started('call_deadlock'));
        ok(wait_for(sub { db_value(q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'}) }, 5),
           "$name: the delivery waits for the customers table");
        # waits until PostgreSQL ends the cycle, by ending the delivery's transaction
        $other->do(q{LOCK TABLE retell.webhook_events IN SHARE MODE});
        $other->rollback;
        $other->disconnect;
        my ($s, $b) = post_finish($sock);
        is($s, 200, "$name: answered 200");
        like($b, qr/"duplicate":false/, "$name: applied, not found applied before");
        is(applied('call_deadlock'), 1, "$name: stored once");
        like(Retell::pg_log(), qr/deadlock detected/, "$name: it was a deadlock's victim");
    });


# libpq builds a whole statement in its buffer and keeps its largest buffer
# for the connection's life. Three deliveries with a 600 KB transcript each
# (about 1.2 MB of parameters: the body and the transcript) wait together:
# each goes alone, on a connection closed after it.
batch_block('TEST 14: large deliveries are not batched past 1 MB of parameters, and a connection that carried one is not kept',
    http => do {
        Retell::pg_http_config() . "retell_postgres_pool 1;\n"
    },
    extra_config => <<'_EOC_',
retell_postgres_timeout 10s;
_EOC_
    test => sub {
        my ($name) = @_;
        my @bodies = map { B('call_started', "call_batch_$_", inbound => 1, start_timestamp => Retell::now_ms(),
                             from_number => sprintf('+1415555%04d', 4000 + $_), transcript => ('words ' x 100000)) } 1 .. 3;
        my ($locker, $first, @socks) = queue_behind_held(@bodies);
        release_held($locker, $first);
        is(answered(200, @socks), 3, "$name: each answered 200");
        is(transactions('call_batch__'), 3, "$name: each in its own transaction");
        unlike(block_log(), qr/batch of/, "$name: no batch");
        is(scalar(() = block_log() =~ /retell postgres connected to/g), 3,
           "$name: a new connection after each large one (the held delivery's, then two)");
        my ($s) = post('/in', started('call_batch_small'));
        is($s, 200, "$name: a small delivery after them is applied");
    });

done_testing();
