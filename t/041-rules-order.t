# The rules against the order of events, and the answer's email (SPEC
# section 5, docs/decisions.md), from a review that found each block
# failing: a delivery from during the call that arrives after the call
# ended (a retry: Retell sends in order but does not wait) fills what is
# missing and replaces nothing; a dropped inbound call is rule 1, before
# action_required; "email" says queued whenever the call has one.
# Harness as t/040-store.t.
use lib 't/inc';
use Test::Nginx::Socket 'no_plan';
use Retell;
use JSON::PP ();

sub B { Retell::event_body(@_) }

# a transfer event: the call object plus the top-level destination
sub T {
    my ($event, $id, %call) = @_;
    my $b = JSON::PP::decode_json(B($event, $id, %call));
    $b->{transfer_destination} = { number => '+14155550111', extension => undef };
    $b->{transfer_option} = { type => 'warm' };
    return JSON::PP->new->canonical->encode($b);
}

my $preprocess = db_block_preprocessor();
add_block_preprocessor(sub { $preprocess->(@_) });

add_response_body_check(\&db_check_hook);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a transfer event retried after call_ended does not replace the final transcript and variables with the ones of mid-call: the final state is the same in any order (SPEC 5)
The transfer fails (transfer_cancelled), the agent goes on, the caller
hangs up; Retell's first delivery of transfer_cancelled failed and its
retry arrives after call_ended (events are "sent in order but not
blocking"). Call "inorder" gets the events in order, call "late" gets
the retry last.
--- deliveries eval
my $mid = "Agent: Parkview, how can I help?\nUser: a person, please\n";
my $end = $mid . "Agent: nobody is free, I will take a message\nUser: the sink in 4B leaks\n";
my %ev = (
    started => sub { ::B('call_started', $_[0], call_status => 'ongoing') },
    cancel  => sub { ::T('transfer_cancelled', $_[0], call_status => 'ongoing', transcript => $mid,
                         collected_dynamic_variables => { unit => '4B' }) },
    ended   => sub { ::B('call_ended', $_[0], call_status => 'ended', disconnection_reason => 'user_hangup',
                         transcript => $end, recording_url => 'https://example.test/r.wav',
                         collected_dynamic_variables => { unit => '4B', issue => 'leak' }) },
);
[ map({ [ '/in', $ev{$_}->('inorder') ] } qw(started cancel ended)),
  map({ [ '/in', $ev{$_}->('late') ] } qw(started ended cancel)) ]
--- error_code eval
[ (200) x 6 ]
--- db_check
my %c = map { $_->{call_id} => $_ } @{ db_rows(q{SELECT call_id, transcript, collected_dynamic_variables::text AS cdv, call_status FROM retell.calls}) };
is($c{late}{call_status}, 'ended', "$name: the call stays ended");
is($c{late}{transcript}, $c{inorder}{transcript}, "$name: the transcript does not depend on the order");
like($c{late}{transcript}, qr/sink in 4B leaks/, "$name: the final transcript kept");
is($c{late}{cdv}, $c{inorder}{cdv}, "$name: the collected variables do not depend on the order");



=== TEST 2: SPEC 5 inbound rule 1: a call the platform dropped (the else-branch of rule 1) comes before rule 2 (action_required): the email's reason is call_failed
An inbound call dropped by the platform (error_llm_websocket_lost_connection,
call_status error) after the agent had collected action_required "true".
--- deliveries eval
[ [ '/in', ::B('call_ended', 'drop_act', call_status => 'error',
               disconnection_reason => 'error_llm_websocket_lost_connection',
               collected_dynamic_variables => { action_required => 'true' }) ] ]
--- error_code: 200
--- db_rows
# status and reason
SELECT t.status, o.reason FROM retell.tickets t LEFT JOIN retell.email_outbox o USING (call_id);
new | call_failed



=== TEST 3: the answer's "email" says queued whenever the call has an outbox row, also for an event that did not create it (docs/decisions.md "email in the answer")
The collected variables said action_required "true" at call_ended (email
queued); the analysis says false (ticket closed, the email stays).
--- deliveries eval
[ [ '/in', ::B('call_ended', 'disagree', disconnection_reason => 'user_hangup',
               collected_dynamic_variables => { action_required => 'true' }) ],
  [ '/in', ::B('call_analyzed', 'disagree', disconnection_reason => 'user_hangup',
               collected_dynamic_variables => { action_required => 'true' },
               call_analysis => { custom_analysis_data => { action_required => JSON::PP::false() } }) ] ]
--- error_code eval
[200, 200]
--- response_body_like eval
[ qr/"ticket_status":"new","email":"queued"/,
  qr/"ticket_status":"closed","email":"queued"/ ]
--- db_rows
# the email stays
SELECT count(*) FROM retell.email_outbox;
1



=== TEST 4: a late call_started retry carrying the early collected variables does not take the ticket back: action_required was "false" at the start and "true" at call_ended; new in either order (it ended closed with the retry last)
Same cause as TEST 1 (the latest delivery won, not the latest state); a
transfer event cannot show it on the status since rules 1/1b dominate.
--- deliveries eval
my %ev = (
    early => sub { ::B('call_started', $_[0], call_status => 'ongoing',
                       collected_dynamic_variables => { action_required => 'false' }) },
    ended => sub { ::B('call_ended', $_[0], call_status => 'ended', disconnection_reason => 'user_hangup',
                       collected_dynamic_variables => { action_required => 'true' }) },
);
[ map({ [ '/in', $ev{$_}->('inorder6') ] } qw(early ended)),
  map({ [ '/in', $ev{$_}->('late6') ] } qw(ended early)) ]
--- error_code eval
[ (200) x 4 ]
--- db_check
my %t = map { $_->{call_id} => $_->{status} } @{ db_rows(q{SELECT call_id, status FROM retell.tickets}) };
is($t{late6}, $t{inorder6}, "$name: the ticket does not depend on the order");
