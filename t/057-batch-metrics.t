# A batch whose members all time out is counted in
# retell_postgres_statements_total as "timeout" (its deliveries' budget ran
# out, README "Metrics"), as a delivery alone that times out is, not as
# "cancelled" (its client went away), which it was before.  The queue is formed as in
# t/058-batch.t TEST 3: the pool's one connection held by a row lock,
# three deliveries behind it, the proxy stalling the batch's statement.
use strict;
use warnings;
use lib 't/inc';
use Test::More;
use Retell;
use Faults;
use NginxRun;

sub B { Retell::event_body(@_) }
sub R { Retell::sample(@_) }
sub C { Retell::with_call_id(@_) }

proxy_start();

sub started { return B('call_started', $_[0], inbound => 1, start_timestamp => Retell::now_ms()) }
sub waiting { return scalar(() = block_log() =~ /retell postgres: waiting for a connection/g) }
sub answered { my ($status, @socks) = @_; return scalar grep { (post_finish($_))[0] == $status } @socks }

sub scrape { return metrics_scrape() }

sub stmt { return qq{retell_postgres_statements_total{result="$_[0]"}} }

sub run_block {
    my ($name, $bodies, $test) = @_;
    block($name, workers => 1,
          each => sub { proxy_cmd('pass'); proxy_cmd('resume') },
          http => Faults::proxy_http_config() . "retell_postgres_pool 1;\nretell_postgres_prepare off;\nclient_body_buffer_size 30m;\n",
          config => Retell::webhook_locations(in => 'retell_postgres_timeout 2s;', out => 'retell_postgres_timeout 2s;')
                    . "location = /metrics { retell_metrics; }\n"
                    . "location = /fast { return 200 \"fast\\n\"; }\n",
          test => sub {
              my ($name) = @_;
              my ($s) = post('/in', C(R('inbound-call_started'), 'call_hold'));
              is($s, 200, "$name: held call started");
              my $locker = lock_rows(q{SELECT 1 FROM retell.calls WHERE call_id = 'call_hold' FOR UPDATE});
              my $first = post_start('/in', C(R('inbound-call_ended'), 'call_hold'));
              ok(wait_for(sub { db_value(q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'}) }, 5),
                 "$name: the connection is held");
              my $w0 = waiting();
              my @socks = map { post_start('/in', started($_)) } @$bodies;
              ok(wait_for(sub { waiting() >= $w0 + @socks }, 5), "$name: they wait for the connection");
              my $m0 = scrape();
              proxy_cmd('stall-up');
              $locker->rollback; $locker->disconnect;
              is((post_finish($first))[0], 200, "$name: the held delivery applied");
              is(answered(503, @socks), scalar @socks, "$name: the waiting ones answered 503 at their budget");
              my $m1 = scrape();
              $test->($name, $m0, $m1);
              proxy_cmd('resume');
          });
}

run_block('TEST 1: one delivery alone times out: one statement "timeout"', ['call_alone_1'], sub {
    my ($name, $m0, $m1) = @_;
    is($m1->{ stmt('timeout') } - $m0->{ stmt('timeout') }, 1, "$name: timeout +1");
    is($m1->{ stmt('cancelled') } - $m0->{ stmt('cancelled') }, 0, "$name: cancelled +0");
});

run_block('TEST 2: a batch of three times out: its one statement "timeout", as a delivery alone\'s', [map { "call_batch_$_" } 1 .. 3], sub {
    my ($name, $m0, $m1) = @_;
    like(block_log(), qr/retell postgres: batch of 3/, "$name: a batch of 3 formed");
    is($m1->{ stmt('timeout') } - $m0->{ stmt('timeout') }, 1, "$name: timeout +1");
    is($m1->{ stmt('cancelled') } - $m0->{ stmt('cancelled') }, 0, "$name: cancelled +0");
});

done_testing();
