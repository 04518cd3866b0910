# The inbound call webhook's lookup and the pool's wait queue (issue 21),
# and PostgreSQL stopped under it:
# a caller hears ringing while the lookup waits, so it goes ahead of the
# deliveries waiting for a connection (they can wait: Retell retries
# them), and lookups among themselves are first come, first served (each
# at the head, the oldest would run out of budget behind the newest).
# A delivery sent again after its connection broke stays behind the
# lookups, and deliveries filling the queue's limit do not refuse one.
#
# A plain Test::More program: the pool's one connection is held by a
# delivery waiting for a row lock, the others queue behind it (the debug
# log says when), then the lock is released; PostgreSQL's log
# (log_min_duration_statement = 0, written as each statement ends: one
# connection, so in the order they ran) gives the order.
use strict;
use warnings;
use lib 't/inc';
use Test::More;
use Retell;
use Faults;
use NginxRun;
use JSON::PP ();
use Time::HiRes qw(time);

sub B { Retell::event_body(@_) }

sub CI {
    my ($from) = @_;
    return JSON::PP->new->canonical->encode({ event => 'call_inbound', call_inbound => {
        agent_id => 'agent_8a1b2c3d4e5f60718293a4b5', from_number => $from,
        to_number => '+14155550100' } });
}

sub prio_block {
    my ($name, $test) = @_;
    block($name, workers => 1,
          http => Retell::pg_logging_http_config()
                  . "retell_postgres_pool 1;\nretell_postgres_timeout 10s;\n",
          config => Retell::webhook_locations()
                    . "location = /ci { retell_webhook call_inbound; retell_webhook_secret $Retell::SECRET;"
                    . " retell_call_inbound_timeout 2s; }\n"
                    . "location = /ci_300 { retell_webhook call_inbound; retell_webhook_secret $Retell::SECRET; }\n"
                    . "location = /fast { return 200 \"fast\\n\"; }\n",
          test => $test);
}

sub waiting { return scalar(() = block_log() =~ /retell postgres: waiting for a connection/g) }

# posts and waits until the module has queued it
sub post_queued {
    my ($path, $body) = @_;
    my $w0 = waiting();
    my $sock = post_start($path, $body);
    ok(wait_for(sub { waiting() > $w0 }, 5), "$::name: $path waits for the connection");
    return $sock;
}

# the pool's one connection held by a delivery of call $id waiting for a
# row lock; returns the locking session and the held client
sub hold_connection {
    my ($id) = @_;
    my ($s) = post('/in', B('call_started', $id));
    is($s, 200, "$::name: $id started");
    my $locker = lock_rows(qq{SELECT 1 FROM retell.calls WHERE call_id = '$id' FOR UPDATE});
    my $sock = post_start('/in', B('call_ended', $id));
    ok(wait_for(sub { db_value(q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'}) }, 5),
       "$::name: the connection is held");
    return ($locker, $sock);
}

# the statements that ran since the mark, in order: a lookup as its
# caller's number, a delivery as its call id
sub ran {
    my @ran;
    for my $entry (split /\n(?=\S[^\n]*? (?:LOG|ERROR|WARNING|FATAL): )/, pg_log()) {
        next unless $entry =~ /duration: [\d.]+ ms  execute /;
        if ($entry =~ /caller_context/) {
            push @ran, $entry =~ /\$4 = '([^']*)'/ ? $1 : '?';
        } elsif ($entry =~ /apply_webhook/) {
            push @ran, $entry =~ /'(call_prio_\w+)'/ ? $1 : '?';
        }
    }
    return @ran;
}

prio_block('TEST 1: a lookup waiting behind deliveries goes first: a delivery stuck on a lock behind the held one does not make it fail open', sub {
    my $name = shift;
    my ($s) = post('/in', B('call_started', 'call_prio_queued'));
    is($s, 200, "$name: the queued call started");
    my ($held_lock, $held) = hold_connection('call_prio_held');
    # the queued delivery will wait for its own lock once it runs
    my $queued_lock = lock_rows(q{SELECT 1 FROM retell.calls WHERE call_id = 'call_prio_queued' FOR UPDATE});
    my $queued = post_queued('/in', B('call_ended', 'call_prio_queued'));
    my $lookup = post_queued('/ci', CI('+14155550134'));
    my $t0 = time;
    pg_log_mark();
    $held_lock->rollback;
    my ($ls, $lb) = post_finish($lookup);
    my $took = time - $t0;
    is($ls, 200, "$name: the lookup answered");
    like($lb, qr/"customer_known":"true"/, "$name: by the database, not failing open behind the stuck delivery")
        or diag("after $took s: $lb");
    is((post_finish($held))[0], 200, "$name: the held delivery applied");
    $queued_lock->rollback;
    is((post_finish($queued))[0], 200, "$name: the queued delivery applied once its lock went");
    is_deeply([ ran() ], [ 'call_prio_held', '+14155550134', 'call_prio_queued' ],
              "$name: the order: the held delivery, the lookup, the delivery queued before it");
});

prio_block('TEST 2: lookups among themselves first come, first served, all ahead of the delivery that waited before them', sub {
    my $name = shift;
    my ($held_lock, $held) = hold_connection('call_prio_held');
    my $queued = post_queued('/in', B('call_started', 'call_prio_queued', from_number => '+14155550999'));
    my @lookups = map { post_queued('/ci', CI(sprintf '+1415555%04d', 1000 + $_)) } 1 .. 3;
    pg_log_mark();
    $held_lock->rollback;
    is((post_finish($_))[0], 200, "$name: a lookup answered") for @lookups;
    is((post_finish($held))[0], 200, "$name: the held delivery applied");
    is((post_finish($queued))[0], 200, "$name: the queued delivery applied");
    is_deeply([ ran() ], [ 'call_prio_held', '+14155551001', '+14155551002', '+14155551003', 'call_prio_queued' ],
              "$name: the order");
});

prio_block('TEST 3: PostgreSQL stopped under the pool: 200 with no variables within the budget (0.3 s), logged at warn; answered from the database again once it is back', sub {
    my $name = shift;
    my ($s, $b) = post('/ci', CI('+14155550134'));
    like($b, qr/"customer_known":"false"/, "$name: answered while PostgreSQL runs");
    Retell::pg_stop();
    # the default budget, 300 ms: the pool tries to connect meanwhile
    my $t0 = time;
    ($s, $b) = post('/ci_300', CI('+14155550134'));
    my $took = time - $t0;
    is($s, 200, "$name: 200 with PostgreSQL stopped");
    is($b, qq{{"call_inbound":{"dynamic_variables":{}}}\n}, "$name: no variables");
    cmp_ok($took, '<', 1, "$name: within the 300 ms budget, and a margin (took $took s)");
    like(block_log(), qr/\[warn\] .*retell call_inbound "-": .*, answering without the caller's context/,
         "$name: logged at warn");
    Retell::pg_start();
    ok(wait_for(sub { (post('/ci', CI('+14155550134')))[1] =~ /"customer_known"/ }, 15),
       "$name: answered from the database again");
});

prio_block('TEST 4: the held delivery\'s connection lost while a lookup waits: the lookup still goes ahead of that delivery\'s retry (a retry went back to the head, ahead of it)', sub {
    my $name = shift;
    my ($held_lock, $held) = hold_connection('call_prio_held');
    my $lookup = post_queued('/ci', CI('+14155550134'));
    pg_log_mark();
    ok(db_value(q{SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE wait_event_type = 'Lock'}),
       "$name: the held delivery's backend terminated");
    my ($ls, $lb) = post_finish($lookup);
    is($ls, 200, "$name: the lookup answered");
    like($lb, qr/"customer_known"/, "$name: from the database, not failing open behind the retried delivery");
    is((ran())[0], '+14155550134', "$name: the lookup ran first on the new connection");
    $held_lock->rollback;
    is((post_finish($held))[0], 200, "$name: the held delivery applied on its retry");
    like(block_log(), qr/retell postgres connection to .* lost/, "$name: the connection was lost");
});

# the wait queue's limit (pool x batch x 16) is the deliveries': a lookup,
# which goes ahead of them all, is not refused with them
block('TEST 5: a lookup arriving when deliveries fill the wait queue still waits, ahead of them, and is answered from the database', workers => 1,
      http => Retell::pg_logging_http_config()
              . "retell_postgres_pool 1;\nretell_postgres_batch 1;\nretell_postgres_timeout 10s;\n",
      config => Retell::webhook_locations()
                . "location = /ci { retell_webhook call_inbound; retell_webhook_secret $Retell::SECRET;"
                . " retell_call_inbound_timeout 2s; }\n"
                . "location = /fast { return 200 \"fast\\n\"; }\n",
      test => sub {
    my $name = shift;
    my ($held_lock, $held) = hold_connection('call_prio_held');
    my @queued = map { post_queued('/in', B('call_started', "call_prio_q$_", from_number => sprintf('+1415555%04d', 2000 + $_))) } 1 .. 16;
    my ($s) = post('/in', B('call_started', 'call_prio_q17', from_number => '+14155552017'));
    is($s, 503, "$name: the queue is full: the next delivery is refused");
    my $lookup = post_queued('/ci', CI('+14155550134'));
    pg_log_mark();
    $held_lock->rollback;
    my ($ls, $lb) = post_finish($lookup);
    is($ls, 200, "$name: the lookup answered");
    like($lb, qr/"customer_known"/, "$name: from the database, once the held delivery is done");
    is((ran())[1], '+14155550134', "$name: right after the held delivery");
    is(scalar(grep { (post_finish($_))[0] == 200 } $held, @queued), 17, "$name: the deliveries waiting applied");
});

done_testing();
