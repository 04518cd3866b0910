# Replay (issue 20, tools/retell-replay): stored unrouted deliveries sent
# again through the module once their agent is mapped: a dry run says
# where each would route; --apply re-signs and sends them, and marks the
# stored rows replayed; the call ends with one ticket and one email; a
# late redelivery of the original bytes is a duplicate; a row retention
# pruned is reported expired.
use lib 't/inc';
use Test::Nginx::Socket 'no_plan';
use Retell;
use JSON::PP ();

sub B { Retell::event_body(@_) }

my $preprocess = db_block_preprocessor(http_config => sub { smtp_http_config() });
add_block_preprocessor(sub { $preprocess->(@_) });
add_response_body_check(\&db_check_hook);

no_shuffle();
run_tests();


# tools/retell-replay with these options; returns its output
sub replay {
    my (@opt) = @_;
    my $port = $ENV{TEST_NGINX_SERVER_PORT} // $ENV{TEST_NGINX_PORT} // 1984;
    my $out = `$Retell::REPO/tools/retell-replay --db "$Retell::PG" --url http://127.0.0.1:$port --inbound-path /in --outbound-path /out --secret $Retell::SECRET --rate 50 @opt 2>&1`;
    Test::More::diag($out) if $?;
    return $out;
}

sub started { B('call_started', 'call_replay', agent_id => 'agent_mapped_later') }
sub analyzed {
    B('call_analyzed', 'call_replay', agent_id => 'agent_mapped_later',
      call_analysis => { call_successful => JSON::PP::true(),
                         custom_analysis_data => { action_required => JSON::PP::true() } });
}

__DATA__

=== TEST 1: an unrouted call replayed once its agent is mapped: one ticket, one email; the stored rows marked replayed; a late original delivery is a duplicate
--- deliveries eval
[ [ '/in', ::started() ], [ '/in', ::analyzed() ] ]
--- error_code eval
[202, 202]
--- db_check
my $mail = smtp_start();
like(replay(), qr/2 stored unrouted deliveries.*still unrouted.*still unrouted.*0 replayed, 2 still unrouted/s,
     "$name: before the mapping: nothing to send");
Retell::dbh()->do(q{INSERT INTO retell.agents VALUES ('agent_mapped_later', 1)});
my $dry = replay();
like($dry, qr/would route to company 1 \(Parkview\).*would route to company 1 \(Parkview\).*dry run/s, "$name: the dry run says where");
is(db_value(q{SELECT count(*) FROM retell.tickets}), 0, "$name: the dry run sent nothing");
like(replay('--apply'), qr/2 replayed, 0 still unrouted, 0 expired, 0 failed/, "$name: applied");
is(db_value(q{SELECT count(*) FROM retell.tickets WHERE call_id = 'call_replay' AND status = 'new'}), 1, "$name: one ticket, new");
is(db_value(q{SELECT count(*) FROM retell.email_outbox WHERE call_id = 'call_replay' AND reason = 'action_required'}), 1, "$name: one email queued");
ok(wait_for(sub { @{ smtp_messages($mail) } >= 1 }, 10), "$name: and sent");
is(db_value(q{SELECT count(*) FROM retell.webhook_events WHERE replayed_at IS NOT NULL AND applied_at IS NOT NULL AND company_id = 1}), 2,
   "$name: the stored rows marked replayed and applied");
like(replay(), qr/0 stored unrouted deliveries/, "$name: never listed again");
my ($s, $b) = post('/in', ::analyzed());
is($s, 200, "$name: a late delivery of the original bytes is answered 200");
like($b, qr/"duplicate":true/, "$name: as a duplicate");
is(db_value(q{SELECT count(*) FROM retell.webhook_events}), 4, "$name: two stored, two replayed: no more");
is(db_value(q{SELECT count(*) FROM retell.email_outbox}), 1, "$name: still one email");
is(scalar @{ smtp_messages($mail) }, 1, "$name: one message at the server");
smtp_stop();



=== TEST 2: a stored unrouted row whose payload retention pruned is reported expired, not sent
--- deliveries eval
[ [ '/in', ::started() ] ]
--- error_code: 202
--- db_check
Retell::dbh()->do(q{UPDATE retell.webhook_events SET received_at = now() - interval '200 days'});
system("$Retell::REPO/tools/retell-prune", $Retell::PG) == 0 or die "prune failed";
Retell::dbh()->do(q{INSERT INTO retell.agents VALUES ('agent_mapped_later', 1)});
like(replay('--apply'), qr/expired, its payload pruned by retention.*0 replayed, 0 still unrouted, 1 expired/s, "$name: reported expired");
is(db_value(q{SELECT count(*) FROM retell.tickets}), 0, "$name: nothing applied");
