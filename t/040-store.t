# Deliveries applied to PostgreSQL (SPEC sections 4 and 5): customers,
# calls, tickets, webhook_events and email_outbox rows, checked with DBI:
# as data in "--- db_rows" (t/inc/Retell.pm, check_db_rows) where a
# query and its rows say it, in "--- db_check" where it takes a program.
use lib 't/inc';
use Test::Nginx::Socket 'no_plan';
use Retell;
use JSON::PP ();
use Digest::SHA ();

our $in = '/in';
our $out = '/out';

sub R { Retell::sample(@_) }
sub B { Retell::event_body(@_) }
sub C { Retell::with_call_id(@_) }

# A direct call of retell.apply_webhook() for call $call, facts as given
# (action: 2 true, 1 false, 0 absent), with the rule tables in $o{rules};
# with $o{wide} [transfer_failed, call_failed, data_storage_setting], the
# 40 parameters of today, else the 36 of a module from before.  Returns
# the ticket status and the email reason ('' for none).
sub apply_direct {
    my ($call, $n, %o) = @_;
    my $body = qq{{"event":"call_analyzed","call":{"call_id":"$call","n":$n}}};
    my @v = ('inbound', 'call_analyzed', $call, $body, 1, 'agent_8a1b2c3d4e5f60718293a4b5',
             '+14155550101', '+14155550199', '+14155550101', '+14155550101', '(415) 555-0101',
             'ended', undef, undef, undef, undef, undef, undef, undef, undef,
             $o{ok} ? 't' : 'f', undef, undef,
             $o{qualified} ? '{"lead_qualified":true}' : undef, undef, undef, undef,
             $o{action} == 2 ? 't' : $o{action} == 1 ? 'f' : undef, undef, $o{qualified} ? 't' : undef,
             $o{transferred} ? 't' : 'f', $o{analyzed} ? 't' : 'f',
             @{ $o{rules} }, 5000, undef);
    if (my $w = $o{wide}) {
        push @v, 'inbound', $w->[0] ? 't' : 'f', $w->[1] ? 't' : 'f', $w->[2];
    }
    my $r = Retell::dbh()->selectrow_hashref(
        'SELECT * FROM retell.apply_webhook(' . join(', ', ('?') x @v) . ')', undef, @v);
    my $reason = db_value('SELECT reason FROM retell.email_outbox WHERE call_id = ?', $call);
    return ($r->{ticket_status}, $reason // '');
}

my $preprocess = db_block_preprocessor();
add_block_preprocessor(sub { $preprocess->(@_) });

add_response_body_check(\&db_check_hook);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: inbound call_started: customer, call, ticket new, no email
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ] ]
--- error_code: 200
--- response_body_like: ^\{"event":"call_started","call_id":"call_5c1f2b7e8a9d4e0fb3c6a1d2e4f50617","ticket_id":\d+,"ticket_status":"new","email":"none","duplicate":false\}$
--- db_check
my $cu = db_row('SELECT * FROM retell.customers');
is($cu->{phone_e164}, '+14155550134', "$name: customer e164");
is($cu->{phone_display}, '(415) 555-0134', "$name: customer display");
is($cu->{phone_raw}, '+1 (415) 555-0134', "$name: customer raw");
is($cu->{name}, 'Dana Whitfield', "$name: customer name from dynamic variables");
is($cu->{company_id}, 1, "$name: customer company");
my $c = db_row('SELECT * FROM retell.calls');
is($c->{call_id}, 'call_5c1f2b7e8a9d4e0fb3c6a1d2e4f50617', "$name: call id");
is($c->{customer_id}, $cu->{id}, "$name: call customer");
is($c->{direction}, 'inbound', "$name: direction");
is($c->{call_status}, 'ongoing', "$name: call status");
is($c->{customer_phone_display}, '(415) 555-0134', "$name: call display");
is(db_value(q{SELECT extract(epoch FROM started_at)::bigint FROM retell.calls}), 1763923200, "$name: started_at");
ok(!$c->{analyzed} && !$c->{transferred} && !defined $c->{action_required}, "$name: facts");
my $t = db_row('SELECT * FROM retell.tickets');
is($t->{status}, 'new', "$name: ticket status");
is($t->{status_source}, 'retell', "$name: ticket source");
is($t->{customer_id}, $cu->{id}, "$name: ticket customer");
is(db_value('SELECT count(*) FROM retell.webhook_events WHERE applied_at IS NOT NULL'), 1, "$name: event stored");
is(db_value(q{SELECT payload->>'event' FROM retell.webhook_events}), 'call_started', "$name: payload stored");
is(db_value(q{SELECT encode(payload_sha256, 'hex') FROM retell.webhook_events}),
   Digest::SHA::sha256_hex(::R('inbound-call_started')), "$name: payload digest");
is(db_value('SELECT count(*) FROM retell.email_outbox'), 0, "$name: no email");
--- no_error_log
[error]



=== TEST 2: inbound started, ended, analyzed with action_required "true": new, one email
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ],
  [ '/in', ::R('inbound-call_ended') ],
  [ '/in', ::R('inbound-call_analyzed-action_required') ] ]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[ qr/"ticket_status":"new","email":"none"/,
  qr/"ticket_status":"new","email":"none"/,
  qr/"ticket_status":"new","email":"queued","duplicate":false/ ]
--- db_check
my $c = db_row('SELECT * FROM retell.calls');
is($c->{call_status}, 'ended', "$name: call status");
is($c->{disconnection_reason}, 'user_hangup', "$name: reason");
is($c->{duration_ms}, 191000, "$name: duration");
like($c->{transcript}, qr/kitchen sink in unit 4B/, "$name: transcript");
like($c->{call_summary}, qr/slow leak/, "$name: summary");
is($c->{user_sentiment}, 'Neutral', "$name: sentiment");
ok($c->{call_successful} && !$c->{in_voicemail}, "$name: analysis booleans");
ok($c->{analyzed} && $c->{action_required}, "$name: analyzed, action required");
is(db_value(q{SELECT custom_analysis_data->>'urgency' FROM retell.calls}), 'same day', "$name: business data");
is(db_value(q{SELECT collected_dynamic_variables->>'unit' FROM retell.calls}), '4B', "$name: collected variables");
is(db_value('SELECT status FROM retell.tickets'), 'new', "$name: ticket");
my $o = db_rows('SELECT * FROM retell.email_outbox');
is(scalar @$o, 1, "$name: one email");
is($o->[0]{reason}, 'action_required', "$name: reason");
is($o->[0]{status}, 'pending', "$name: pending");
is_deeply($o->[0]{recipients}, ['ops@parkview.test', 'leasing@parkview.test'], "$name: valid recipients only");
is(db_value('SELECT count(*) FROM retell.customers'), 1, "$name: one customer");
is(db_value('SELECT count(*) FROM retell.webhook_events'), 3, "$name: three events");
like(block_log(), qr/\[warn\] .*retell call "call_5c1f2b7e8a9d4e0fb3c6a1d2e4f50617": invalid email recipients dropped: \{"not an address"\}/, "$name: invalid recipient logged");



=== TEST 3: inbound action_required false closes the ticket, no email
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ],
  [ '/in', ::C(::R('inbound-call_analyzed-action_required'), 'call_5c1f2b7e8a9d4e0fb3c6a1d2e4f50617', action_required => '" False "') ] ]
--- error_code eval
[200, 200]
--- response_body_like eval
[ qr/"ticket_status":"new"/, qr/"ticket_status":"closed","email":"none"/ ]
--- db_rows
# closed
SELECT status FROM retell.tickets;
closed

# fact
SELECT action_required::text FROM retell.calls;
false

# no email
SELECT count(*) FROM retell.email_outbox;
0



=== TEST 4: inbound analyzed without action_required: standard qualification
--- deliveries eval
[ [ '/in', ::B('call_analyzed', 'q1', call_analysis => { call_successful => JSON::PP::false(), custom_analysis_data => { lead_qualified => JSON::PP::true() } }) ],
  [ '/in', ::B('call_analyzed', 'q2', call_analysis => { call_successful => JSON::PP::true(), custom_analysis_data => { qualified => 'TRUE' } }) ],
  [ '/in', ::B('call_analyzed', 'r1', call_analysis => { call_successful => JSON::PP::true(), custom_analysis_data => { qualified => JSON::PP::false() } }) ],
  [ '/in', ::B('call_analyzed', 'c1', call_analysis => { call_successful => JSON::PP::false() }) ],
  [ '/in', ::B('call_analyzed', 'c2', call_analysis => { custom_analysis_data => { action_required => 'maybe' } }) ],
  [ '/in', ::B('call_ended', 'n1', disconnection_reason => 'user_hangup') ] ]
--- error_code eval
[ (200) x 6 ]
--- response_body_like eval
[ qr/"ticket_status":"qualified","email":"none"/,
  qr/"ticket_status":"qualified"/,
  qr/"ticket_status":"resolved"/,
  qr/"ticket_status":"contacted"/,
  qr/"ticket_status":"contacted"/,
  qr/"ticket_status":"new"/ ]
--- db_rows
# statuses
SELECT call_id, status FROM retell.tickets ORDER BY call_id;
c1 | contacted
c2 | contacted
n1 | new
q1 | qualified
q2 | qualified
r1 | resolved

# no email
SELECT count(*) FROM retell.email_outbox;
0
--- db_check
like(block_log(), qr/\[info\] .*retell call "c2": action_required is neither true nor false, treated as absent/, "$name: unusable value logged");



=== TEST 5: inbound transfer: new and an email with reason call_transfer
--- deliveries eval
[ [ '/in', ::B('call_ended', 'x1', disconnection_reason => 'call_transfer', transfer_destination => '+14155550111') ],
  [ '/in', ::B('call_analyzed', 'x1', disconnection_reason => 'call_transfer', call_analysis => { custom_analysis_data => { action_required => JSON::PP::false() } }) ] ]
--- error_code eval
[200, 200]
--- response_body_like eval
[ qr/"ticket_status":"new","email":"queued"/, qr/"ticket_status":"new","email":"queued"/ ]
--- db_rows
# reason
SELECT reason FROM retell.email_outbox;
call_transfer

# one email
SELECT count(*) FROM retell.email_outbox;
1

# destination
SELECT transfer_destination FROM retell.calls;
+14155550111



=== TEST 6: outbound samples: closed unless transfer or action required; customer from to_number
--- deliveries eval
[ [ '/out', ::R('outbound-call_ended-no_answer') ],
  [ '/out', ::R('outbound-call_ended-transfer') ],
  [ '/out', ::R('outbound-call_analyzed-interested') ],
  [ '/out', ::B('call_started', 'o1', outbound => 1) ],
  [ '/out', ::B('call_analyzed', 'o2', outbound => 1, call_analysis => { call_successful => JSON::PP::true(), custom_analysis_data => { qualified => JSON::PP::true() } }) ],
  [ '/out', ::B('call_analyzed', 'o3', outbound => 1, call_analysis => { custom_analysis_data => { action_required => 'false' } }) ] ]
--- error_code eval
[ (200) x 6 ]
--- response_body_like eval
[ qr/"ticket_status":"closed","email":"none"/,
  qr/"ticket_status":"new","email":"queued"/,
  qr/"ticket_status":"new","email":"queued"/,
  qr/"ticket_status":"closed","email":"none"/,
  qr/"ticket_status":"closed","email":"none"/,
  qr/"ticket_status":"closed","email":"none"/ ]
--- db_check
my %t = map { $_->{call_id} => $_->{status} } @{ db_rows('SELECT call_id, status FROM retell.tickets') };
is($t{call_0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b}, 'closed', "$name: no answer closed");
is($t{call_3b2a1908f7e6d5c4b3a2918f7e6d5c4b}, 'new', "$name: transfer new");
is($t{call_7a6b5c4d3e2f10a9b8c7d6e5f4a3b2c1}, 'new', "$name: interested new");
is_deeply(db_rows('SELECT call_id, reason FROM retell.email_outbox ORDER BY call_id'),
          [ { call_id => 'call_3b2a1908f7e6d5c4b3a2918f7e6d5c4b', reason => 'call_transfer' },
            { call_id => 'call_7a6b5c4d3e2f10a9b8c7d6e5f4a3b2c1', reason => 'action_required' } ],
          "$name: emails");
my %cu = map { $_->{phone_raw} => $_ } @{ db_rows('SELECT * FROM retell.customers') };
is($cu{'650.555.0172'}{phone_e164}, '+16505550172', "$name: no-answer customer e164");
is($cu{'650.555.0172'}{phone_display}, '(650) 555-0172', "$name: no-answer display");
is($cu{'650.555.0172'}{name}, 'Luis Ortega', "$name: no-answer name");
is($cu{'+44 20 7946 0321'}{phone_e164}, '+442079460321', "$name: UK e164");
is($cu{'+44 20 7946 0321'}{phone_display}, '+44 2079460321', "$name: UK display");
is($cu{'+1-510-555-0148'}{phone_display}, '(510) 555-0148', "$name: transfer display");
is(db_value(q{SELECT count(*) FROM retell.customers WHERE phone_e164 = '+14155550199'}), 0, "$name: the agent's number is no customer");
my $c = db_row(q{SELECT * FROM retell.calls WHERE call_id = 'call_0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b'});
is($c->{call_status}, 'not_connected', "$name: unanswered call kept");
is($c->{from_number}, '+14155550199', "$name: agent number in from_number");



=== TEST 7: anonymous caller: no customer, the raw number shown
--- deliveries eval
[ [ '/in', ::R('inbound-call_analyzed-voicemail-anonymous') ] ]
--- error_code: 200
--- response_body_like: "ticket_status":"contacted","email":"none"
--- db_check
is(db_value('SELECT count(*) FROM retell.customers'), 0, "$name: no customer");
my $t = db_row('SELECT * FROM retell.tickets');
ok(!defined $t->{customer_id}, "$name: ticket without customer");
my $c = db_row('SELECT * FROM retell.calls');
ok(!defined $c->{customer_id}, "$name: call without customer");
is($c->{customer_phone_display}, 'anonymous', "$name: shown as given");
is(db_value('SELECT customer_phone_display FROM retell.call_records'), 'anonymous', "$name: in call_records");



=== TEST 8: unanswered outbound call with no call_started: ended then analyzed
--- deliveries eval
[ [ '/out', ::R('outbound-call_ended-no_answer') ],
  [ '/out', ::B('call_analyzed', 'call_0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b', outbound => 1, to_number => '650.555.0172', disconnection_reason => 'dial_no_answer', call_status => 'not_connected', call_analysis => { in_voicemail => JSON::PP::false(), call_successful => JSON::PP::false() }) ] ]
--- error_code eval
[200, 200]
--- db_rows
# one call
SELECT count(*) FROM retell.calls;
1

# closed
SELECT status FROM retell.tickets;
closed

# one customer
SELECT count(*) FROM retell.customers;
1

# analyzed
SELECT analyzed::text FROM retell.calls;
true



=== TEST 9: later events fill facts and never erase them
--- deliveries eval
[ [ '/in', ::R('inbound-call_ended') ],
  [ '/in', ::R('inbound-call_started') ],
  [ '/in', ::B('call_ended', 'call_5c1f2b7e8a9d4e0fb3c6a1d2e4f50617', start_timestamp => 1763923299000, transcript => undef, recording_url => '', call_status => 'ended') ] ]
--- error_code eval
[200, 200, 200]
--- db_check
my $c = db_row('SELECT *, extract(epoch FROM started_at)::bigint AS started FROM retell.calls');
is($c->{call_status}, 'ended', "$name: a late call_started does not reopen the call");
is($c->{started}, 1763923200, "$name: started_at keeps the first value");
like($c->{transcript}, qr/kitchen sink/, "$name: transcript not blanked");
like($c->{recording_url}, qr/recording\.wav$/, "$name: an empty string erases nothing");
is(db_value('SELECT count(*) FROM retell.webhook_events'), 3, "$name: three distinct deliveries");



=== TEST 10: a delivery repeated 3 times: one effect, then duplicates
--- deliveries eval
[ ([ '/in', ::R('inbound-call_analyzed-action_required') ]) x 3 ]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[ qr/"email":"queued","duplicate":false/, qr/"ticket_status":"new","email":"queued","duplicate":true/, qr/"duplicate":true/ ]
--- db_check
is(db_value('SELECT count(*) FROM retell.webhook_events'), 1, "$name: one event row");
is(db_value('SELECT count(*) FROM retell.email_outbox'), 1, "$name: one email");
is(db_value('SELECT count(*) FROM retell.tickets'), 1, "$name: one ticket");



=== TEST 11: 10 identical deliveries at once produce one effect
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ] ]
--- error_code: 200
--- db_check
my $body = ::R('inbound-call_analyzed-action_required');
my @res = concurrent_posts(map { ['/in', $body] } 1 .. 10);
is_deeply([ map { $_->[0] } @res ], [ (200) x 10 ], "$name: all answered 200");
is(scalar(grep { $_->[1] =~ /"duplicate":false/ } @res), 1, "$name: exactly one applied");
is(scalar(grep { $_->[1] =~ /"duplicate":true/ } @res), 9, "$name: nine duplicates");
is(db_value('SELECT count(*) FROM retell.webhook_events'), 2, "$name: two event rows");
is(db_value('SELECT count(*) FROM retell.email_outbox'), 1, "$name: one email");
# and the three events of one call at once, on other calls
my @three = map { my $id = "race$_"; map { ['/in', ::C(::R($_), $id)] }
                  qw(inbound-call_started inbound-call_ended inbound-call_analyzed-action_required) } 1 .. 3;
@res = concurrent_posts(@three);
is_deeply([ map { $_->[0] } @res ], [ (200) x 9 ], "$name: events of one call at once");
is(db_value(q{SELECT count(*) FROM retell.tickets WHERE call_id LIKE 'race%' AND status = 'new'}), 3, "$name: tickets");
is(db_value(q{SELECT count(*) FROM retell.email_outbox WHERE call_id LIKE 'race%'}), 3, "$name: one email each");
is(db_value(q{SELECT count(*) FROM retell.calls WHERE call_id LIKE 'race%' AND analyzed AND transcript IS NOT NULL AND started_at IS NOT NULL}), 3, "$name: facts merged");
--- no_error_log
[error]



=== TEST 12: staff win: a status set by staff is never changed by events
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ] ]
--- error_code: 200
--- db_check
dbh()->do(q{UPDATE retell.tickets SET status = 'contacted', status_source = 'staff'});
my ($s, $b) = post('/in', ::R('inbound-call_analyzed-action_required'));
is($s, 200, "$name: applied");
like($b, qr/"ticket_status":"contacted"/, "$name: answer shows the staff status");
is(db_value('SELECT status FROM retell.tickets'), 'contacted', "$name: status kept");
ok(db_value('SELECT action_required FROM retell.calls'), "$name: facts still recorded");



=== TEST 13: unknown agent without retell_company: 202, stored unapplied, applied once mapped
--- deliveries eval
[ [ '/in', ::C(::R('inbound-call_started'), 'u1', agent_id => '"agent_unknown"') ] ]
--- error_code: 202
--- response_body_like: ^\{"event":"call_started","call_id":"u1","ticket_id":null,"ticket_status":null,"email":"none","duplicate":false,"routed":false\}$
--- db_check
my $w = db_row('SELECT * FROM retell.webhook_events');
ok(!defined $w->{company_id} && !defined $w->{applied_at}, "$name: stored unapplied");
is(db_value('SELECT count(*) FROM retell.calls'), 0, "$name: no call");
is(db_value('SELECT count(*) FROM retell.tickets'), 0, "$name: no ticket");
my $body = ::C(::R('inbound-call_started'), 'u1', agent_id => '"agent_unknown"');
my ($s) = post('/in', $body);
is($s, 202, "$name: still unrouted on a retry");
dbh()->do(q{INSERT INTO retell.agents VALUES ('agent_unknown', 2)});
my ($s2, $b2) = post('/in', $body);
is($s2, 200, "$name: replayed once the agent is mapped");
like($b2, qr/"ticket_status":"new","email":"none","duplicate":false/, "$name: applied");
is(db_value('SELECT company_id FROM retell.calls'), 2, "$name: routed to the mapped company");
is(db_value('SELECT count(*) FROM retell.webhook_events WHERE applied_at IS NOT NULL'), 1, "$name: one event row, applied");
my ($s3, $b3) = post('/in', $body);
like($b3, qr/"duplicate":true/, "$name: then a duplicate");
--- error_log
belongs to no company; delivery stored unapplied



=== TEST 14: unknown agent with retell_company: routed there; notifications off
--- extra_config
retell_company 2;
--- deliveries eval
[ [ '/in', ::C(::R('inbound-call_analyzed-action_required'), 'u2', agent_id => '"agent_unknown"') ] ]
--- error_code: 200
--- response_body_like: "ticket_status":"new","email":"disabled"
--- db_check
is(db_value('SELECT company_id FROM retell.tickets'), 2, "$name: company");
is(db_value('SELECT company_id FROM retell.customers'), 2, "$name: customer company");
is(db_value('SELECT count(*) FROM retell.email_outbox'), 0, "$name: no email");



=== TEST 15: a mapped agent wins over retell_company; no valid recipient means no email
--- extra_config
retell_company 2;
--- deliveries eval
[ [ '/in', ::C(::R('inbound-call_analyzed-action_required'), 'n3', agent_id => '"agent_nobody"') ] ]
--- error_code: 200
--- response_body_like: "email":"no_recipients"
--- db_check
is(db_value('SELECT company_id FROM retell.tickets'), 3, "$name: the agent's company");
is(db_value('SELECT count(*) FROM retell.email_outbox'), 0, "$name: no email");
--- error_log
invalid email recipients dropped: {nobody,@bad}



=== TEST 16: rejected requests write nothing
--- request eval
[ "POST /in\n" . ::R('inbound-call_started'),
  "POST /in\n" . ::R('inbound-call_started'),
  "POST /in\nnot json",
  "POST /in\n{\"event\":\"transcript_updated\",\"call\":{\"call_id\":\"c\"}}",
  "GET /in" ]
--- more_headers eval
[ "X-Retell-Signature: v=1,d=" . ('0' x 64),
  Retell::signed_headers(::R('inbound-call_started'), offset => -600_000),
  Retell::signed_headers('not json'),
  Retell::signed_headers("{\"event\":\"transcript_updated\",\"call\":{\"call_id\":\"c\"}}"),
  "" ]
--- error_code eval
[401, 401, 400, 204, 405]
--- db_check
for my $t (qw(customers calls tickets webhook_events email_outbox)) {
    is(db_value("SELECT count(*) FROM retell.$t"), 0, "$name: no $t rows");
}



=== TEST 17: archived calls are missing from call_records
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ],
  [ '/out', ::R('outbound-call_ended-transfer') ] ]
--- error_code eval
[200, 200]
--- db_check
is(db_value('SELECT count(*) FROM retell.call_records'), 2, "$name: both listed");
dbh()->do(q{UPDATE retell.calls SET archived_at = now() WHERE call_id = 'call_3b2a1908f7e6d5c4b3a2918f7e6d5c4b'});
is_deeply(db_rows('SELECT call_id, ticket_status, customer_name, customer_phone_display FROM retell.call_records'),
          [ { call_id => 'call_5c1f2b7e8a9d4e0fb3c6a1d2e4f50617', ticket_status => 'new',
              customer_name => 'Dana Whitfield', customer_phone_display => '(415) 555-0134' } ],
          "$name: the archived call is gone");



=== TEST 18: retell_default_country_code for national numbers
--- extra_config
retell_default_country_code 44;
--- deliveries eval
[ [ '/in', ::B('call_started', 'uk1', from_number => '020 7946 0321') ],
  [ '/in', ::B('call_started', 'us1', from_number => '+1 415 555 0134') ] ]
--- error_code eval
[200, 200]
--- db_rows
# national under 44
SELECT phone_e164 FROM retell.customers WHERE phone_raw = '020 7946 0321';
+442079460321

# +1 shown internationally
SELECT phone_display FROM retell.customers WHERE phone_raw = '+1 415 555 0134';
+1 415-555-0134



=== TEST 19: all 6 orders of started, ended, analyzed give the same ticket and outbox, for 3 scenarios
--- deliveries eval
my @perms = ([0,1,2], [0,2,1], [1,0,2], [1,2,0], [2,0,1], [2,1,0]);
my %scenarios = (
    # inbound, action required in the analysis
    act => [ '/in', map { ::R($_) } qw(inbound-call_started inbound-call_ended inbound-call_analyzed-action_required) ],
    # outbound, transferred at the end, analysis says no action
    xfer => [ '/out', ::B('call_started', 'x', outbound => 1),
              ::B('call_ended', 'x', outbound => 1, disconnection_reason => 'call_transfer'),
              ::B('call_analyzed', 'x', outbound => 1, disconnection_reason => 'call_transfer',
                  call_analysis => { custom_analysis_data => { action_required => JSON::PP::false() } }) ],
    # inbound, the collected variables say false, the analysis says true
    prec => [ '/in', ::B('call_started', 'p'),
              ::B('call_ended', 'p', collected_dynamic_variables => { action_required => 'false' }),
              ::B('call_analyzed', 'p', call_analysis => { call_successful => JSON::PP::true(),
                  custom_analysis_data => { action_required => 'true' } }) ],
);
my @d;
for my $s (sort keys %scenarios) {
    my ($path, @events) = @{ $scenarios{$s} };
    for my $i (0 .. $#perms) {
        push @d, map { [ $path, ::C($events[$_], "$s-$i") ] } @{ $perms[$i] };
    }
}
\@d
--- error_code eval
[ (200) x 54 ]
--- db_check
for my $s (qw(act xfer prec)) {
    my $rows = db_rows(q{SELECT t.status, t.customer_id IS NOT NULL AS has_customer, o.reason, o.recipients,
                                c.transferred, c.analyzed, c.action_required, c.call_status,
                                extract(epoch FROM c.started_at)::bigint AS started
                           FROM retell.tickets t JOIN retell.calls c USING (call_id)
                           LEFT JOIN retell.email_outbox o USING (call_id)
                          WHERE t.call_id LIKE ? ORDER BY t.call_id}, "$s-%");
    is(scalar @$rows, 6, "$name: $s: six calls");
    is_deeply($rows->[$_], $rows->[0], "$name: $s: order $_ ends like order 0") for 1 .. 5;
}
my %want = (act => ['new', 'action_required'], xfer => ['new', 'call_transfer'], prec => ['new', 'action_required']);
for my $s (sort keys %want) {
    my $r = db_row(q{SELECT t.status, o.reason FROM retell.tickets t LEFT JOIN retell.email_outbox o USING (call_id)
                      WHERE t.call_id = ?}, "$s-0");
    is_deeply([ $r->{status}, $r->{reason} ], $want{$s}, "$name: $s: final ticket and email");
}
is(db_value('SELECT count(*) FROM retell.email_outbox'), 18, "$name: one email per qualifying call");



=== TEST 20: the rules as the module sends them (digits) and as modules before sent them (array literals) give the same rows
A direct call of retell.apply_webhook with every combination of facts the
same under a 48-digit string and under its array literal.
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ] ]
--- error_code: 200
--- db_check
my @status = qw(new qualified contacted resolved closed);
my @reason = ('', 'action_required', 'call_transfer');
# a table where the index decides: status and reason vary with it
my $digits_status = join '', map { $_ % 5 } 0 .. 47;
my $digits_email = join '', map { $_ % 3 } 0 .. 47;
my $array = sub { my ($names, $d) = @_; '{' . join(',', map { qq{"$names->[$_]"} } split //, $d) . '}' };
my %form = (digits => [ $digits_status, $digits_email ],
            array => [ $array->(\@status, $digits_status), $array->(\@reason, $digits_email) ]);
my %got;
for my $form (sort keys %form) {
    for my $f (0 .. 47) {
        my ($transferred, $ar, $analyzed, $qualified, $ok) =
            (int($f / 24) % 2, int($f / 8) % 3, int($f / 4) % 2, int($f / 2) % 2, $f % 2);
        my $call = "compat-$form-$f";
        my ($status, $o) = ::apply_direct($call, $f, ok => $ok, qualified => $qualified, action => $ar,
                                          transferred => $transferred, analyzed => $analyzed,
                                          rules => $form{$form});
        $got{$form}[$f] = [ $status, $o ];
    }
}
is_deeply($got{array}, $got{digits}, "$name: the same ticket and email for all 48 indexes");
my $f = 16 + 4 + 1;     # action required, analyzed, successful
is_deeply($got{digits}[$f], [ $status[$f % 5], $reason[$f % 3] ], "$name: the index's entry applied");
is(scalar(grep { $_->[0] eq 'qualified' } @{ $got{digits} }) > 0
   && scalar(grep { $_->[1] eq 'call_transfer' } @{ $got{digits} }) > 0, 1, "$name: the entries vary");
--- no_error_log
[error]



=== TEST 21: the migrations applied again, as every deployment does, take no lock a delivery in flight holds or waits for
tools/migrate runs while another session holds what a delivery holds
mid-statement (rows being written in the module's tables): it must not
wait for it, nor make a delivery wait behind it. An ALTER TABLE or CREATE
INDEX that found nothing to do still took its table's lock, and a
delivery holding one table while it needed the other deadlocked with it
(a 503 a second after PostgreSQL restarted in t/070-faults.t #3).
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ] ]
--- error_code: 200
--- db_check
my $inflight = lock_rows(q{LOCK TABLE retell.webhook_events, retell.customers, retell.calls, retell.tickets,
                                      retell.email_outbox IN ROW EXCLUSIVE MODE});
$inflight->do(q{SELECT 1 FROM retell.companies WHERE id = 1 FOR UPDATE});
my $out = `$Retell::REPO/tools/migrate "$Retell::PG options='-c lock_timeout=2000'" 2>&1`;
is($?, 0, "$name: tools/migrate completes beside a delivery in flight") or diag($out);
$inflight->rollback;
$inflight->disconnect;
my ($s) = post('/in', C(R('inbound-call_ended'), 'call_5c1f2b7e8a9d4e0fb3c6a1d2e4f50617'));
is($s, 200, "$name: deliveries go on");
is(db_value(q{SELECT count(*) FROM pg_proc WHERE proname = 'apply_webhook'}), 1, "$name: one function");



=== TEST 22: the statement's parameters and result columns named in C are the function's, in its order
ngx_http_retell_store.c names each parameter of retell.apply_webhook()
(NGX_HTTP_RETELL_P_<name> for p_<name>) and each result column
(NGX_HTTP_RETELL_R_<name> for the OUT <name>): a parameter added to one
and not the other, or moved, fails here.
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ] ]
--- error_code: 200
--- db_check
open my $fh, '<', "$Retell::REPO/ngx_http_retell_module/ngx_http_retell_store.c" or die $!;
my $src = do { local $/; <$fh> };
my ($params) = $src =~ /typedef enum \{(.*?)\} ngx_http_retell_apply_param_e;/s;
my ($columns) = $src =~ /typedef enum \{(.*?)\} ngx_http_retell_apply_column_e;/s;
my @c_params = map { 'p_' . lc } $params =~ /NGX_HTTP_RETELL_P_(\w+)/g;
my @c_columns = map { lc } $columns =~ /NGX_HTTP_RETELL_R_(\w+)/g;
my $row = db_row(q{SELECT proargnames, proargmodes FROM pg_proc
                    WHERE proname = 'apply_webhook' AND pronamespace = 'retell'::regnamespace});
my @names = @{ $row->{proargnames} };
my @modes = @{ $row->{proargmodes} // [ ('i') x @names ] };
is_deeply(\@c_params, [ map { $names[$_] } grep { $modes[$_] eq 'i' } 0 .. $#names ], "$name: the parameters, in order");
is_deeply(\@c_columns, [ map { $names[$_] } grep { $modes[$_] eq 'o' } 0 .. $#names ], "$name: the result columns, in order");
my ($select) = $src =~ /"SELECT (ticket_id.*?)"\s*"\s*FROM retell\.apply_webhook/s;
$select =~ s/"\s*"//g;
is_deeply([ split /,\s*/, $select ], \@c_columns, "$name: the SELECT list, in order");
my ($n) = $src =~ /retell\.apply_webhook\((.*?)\)";/s;
is(scalar(() = $n =~ /\$\d+/g), scalar @c_params, "$name: one placeholder a parameter");



=== TEST 23: every signed event the module does not apply is acknowledged (204), whatever its body holds besides, and changes nothing; unsigned is still 401, a malformed call event still 400
Retell retries every answer that is not 2xx: chat events (a "chat"
object, no "call"), transcript and transfer progress, an inbound call
webhook sent to a call endpoint, and event types added later are
acknowledged, not refused into retries.
--- deliveries eval
[ [ '/in', '{"event":"chat_started","chat":{"chat_id":"chat_1","agent_id":"agent_8a1b2c3d4e5f60718293a4b5","chat_status":"ongoing"}}' ],
  [ '/in', '{"event":"chat_ended","chat":{"chat_id":"chat_1","chat_status":"ended","transcript":"User: hi"}}' ],
  [ '/out', '{"event":"chat_analyzed","chat":{"chat_id":"chat_1","chat_analysis":{"chat_summary":"hi","custom_analysis_data":{"action_required":true}}}}' ],
  [ '/in', '{"event":"transcript_updated","call":{"call_id":"c_t","transcript":"Agent: hi"},"transcript_with_tool_calls":[]}' ],
  [ '/in', '{"event":"transfer_started","call":{"call_id":"c_t"},"transfer_destination":{"number":"+14155550100","extension":null},"transfer_option":{"type":"warm"}}' ],
  [ '/in', '{"event":"transfer_ended","call":{"call_id":"c_t"}}' ],
  [ '/in', '{"event":"call_inbound","call_inbound":{"agent_id":"agent_8a1b2c3d4e5f60718293a4b5","from_number":"+14155550134","to_number":"+14155550100"}}' ],
  [ '/in', '{"event":"call_escalated","call":{"call_id":17,"direction":["odd"]},"new_top_level":{"x":1}}' ],
  [ '/in', '{"new_top_level":1,"event":"something_newer"}' ],
  [ '/in', '{"event":"chat_started","chat":{"chat_id":"chat_2"}}', secret => 'not-the-secret' ],
  [ '/in', '{"event":"call_started","call":{"call_id":17}}' ],
  [ '/in', '{"event":"call_ended","chat":{"chat_id":"chat_3"}}' ] ]
--- error_code eval
[204, 204, 204, 204, 204, 204, 204, 204, 204, 401, 400, 400]
--- db_check
for my $t (qw(customers calls tickets webhook_events email_outbox)) {
    is(db_value("SELECT count(*) FROM retell.$t"), 0, "$name: no $t rows");
}



=== TEST 24: the customer is the other party by the call's own direction, whichever endpoint it reached; the rules are the endpoint's, or the call's with "retell_webhook auto"
Retell sends all of an agent's calls (an account-level webhook: all of
the account's) to one URL. The business line (+14155550199 outbound,
+14155550100 inbound) is never a customer.
--- config eval
Retell::webhook_locations()
. "location = /auto { retell_webhook auto; retell_webhook_secret $Retell::SECRET; }\n"
--- deliveries eval
[ [ '/in', ::B('call_started', 'call_dir_out_on_in', outbound => 1) ],
  [ '/out', ::B('call_started', 'call_dir_in_on_out', inbound => 1) ],
  [ '/auto', ::B('call_started', 'call_dir_auto_out', outbound => 1) ],
  [ '/auto', ::B('call_started', 'call_dir_auto_in', inbound => 1) ],
  [ '/auto', ::B('call_started', 'call_dir_auto_none', inbound => 1, direction => undef) ],
  [ '/out', ::B('call_started', 'call_dir_none_on_out', outbound => 1, direction => undef) ] ]
--- error_code eval
[200, 200, 200, 200, 200, 200]
--- db_check
my %want = (
    call_dir_out_on_in   => ['+15105550148', 'outbound', 'inbound', 'new'],
    call_dir_in_on_out   => ['+14155550134', 'inbound', 'outbound', 'closed'],
    call_dir_auto_out    => ['+15105550148', 'outbound', 'outbound', 'closed'],
    call_dir_auto_in     => ['+14155550134', 'inbound', 'inbound', 'new'],
    call_dir_auto_none   => ['+14155550134', 'inbound', 'inbound', 'new'],
    call_dir_none_on_out => ['+15105550148', 'outbound', 'outbound', 'closed'],
);
for my $id (sort keys %want) {
    my $row = db_row(q{SELECT cu.phone_e164, c.direction, w.endpoint, t.status
                         FROM retell.calls c
                         JOIN retell.customers cu ON cu.id = c.customer_id
                         JOIN retell.webhook_events w ON w.call_id = c.call_id
                         JOIN retell.tickets t ON t.call_id = c.call_id
                        WHERE c.call_id = ?}, $id);
    is_deeply([ @$row{qw(phone_e164 direction endpoint status)} ], $want{$id},
              "$name: $id: customer, direction, rules, ticket");
}
is(db_value(q{SELECT count(*) FROM retell.customers WHERE phone_e164 IN ('+14155550199', '+14155550100')}), 0,
   "$name: no business line as a customer");
like(block_log(), qr/"call_dir_out_on_in": an outbound call on the inbound endpoint: its customer is the called party/,
     "$name: the mismatch logged");
unlike(block_log(), qr/"call_dir_auto_\w+": an \w+ call on/, "$name: nothing to log with auto");



=== TEST 25: transfer events, failed transfers and calls the platform dropped: every order of each call's events gives the same ticket and email
transfer_bridged counts as a transfer (the ticket opens while the call
goes on); a transfer that did not connect (transfer_cancelled, as an
event or how the call ended) needs a person in both directions; an
inbound call the platform dropped (call_status error, error_*,
concurrency_limit_reached) needs one, an outbound call nobody answered
does not; retell_failed_call_tickets off turns the last rule off.
--- config eval
Retell::webhook_locations()
. "location = /in_quiet { retell_webhook inbound; retell_webhook_secret $Retell::SECRET; retell_failed_call_tickets off; }\n"
--- deliveries eval
sub T {
    my ($event, $id, $number, %call) = @_;
    my $b = JSON::PP::decode_json(::B($event, $id, %call));
    $b->{transfer_destination} = { number => $number, extension => undef };
    $b->{transfer_option} = { type => 'warm' };
    return JSON::PP->new->canonical->encode($b);
}
sub perms { my @l = @_; return [[]] unless @l; return [ map { my $i = $_; map { [ $l[$i], @$_ ] } @{ perms(@l[grep { $_ != $i } 0 .. $#l]) } } 0 .. $#l ] }
my $no = { custom_analysis_data => {} };
my %scenarios = (
    bridged_out => [ '/out', ::B('call_started', 'x', outbound => 1),
                     T('transfer_bridged', 'x', '+14155550111', outbound => 1, call_status => 'ongoing'),
                     ::B('call_ended', 'x', outbound => 1, disconnection_reason => 'transfer_bridged') ],
    cancel_out  => [ '/out', ::B('call_started', 'x', outbound => 1),
                     T('transfer_cancelled', 'x', '+14155550111', outbound => 1, call_status => 'ongoing'),
                     ::B('call_ended', 'x', outbound => 1, disconnection_reason => 'user_hangup') ],
    cancel_in   => [ '/in', ::B('call_started', 'x'),
                     ::B('call_ended', 'x', disconnection_reason => 'transfer_cancelled'),
                     ::B('call_analyzed', 'x', disconnection_reason => 'transfer_cancelled',
                         call_analysis => { call_successful => JSON::PP::true(),
                                            custom_analysis_data => { action_required => JSON::PP::false() } }) ],
    drop_llm    => [ '/in', ::B('call_started', 'x'),
                     ::B('call_ended', 'x', disconnection_reason => 'error_llm_websocket_lost_connection'),
                     ::B('call_analyzed', 'x', disconnection_reason => 'error_llm_websocket_lost_connection',
                         call_analysis => $no) ],
    drop_conc   => [ '/in', ::B('call_ended', 'x', call_status => 'error', disconnection_reason => 'concurrency_limit_reached'),
                     ::B('call_analyzed', 'x', call_status => 'error', disconnection_reason => 'concurrency_limit_reached',
                         call_analysis => $no) ],
    noanswer_out => [ '/out', ::B('call_ended', 'x', outbound => 1, call_status => 'not_connected', disconnection_reason => 'dial_no_answer'),
                      ::B('call_analyzed', 'x', outbound => 1, call_status => 'not_connected',
                          disconnection_reason => 'dial_no_answer', call_analysis => $no) ],
    quiet_drop  => [ '/in_quiet', ::B('call_started', 'x'),
                     ::B('call_ended', 'x', disconnection_reason => 'error_llm_websocket_lost_connection'),
                     ::B('call_analyzed', 'x', disconnection_reason => 'error_llm_websocket_lost_connection',
                         call_analysis => $no) ],
);
my @d;
for my $s (sort keys %scenarios) {
    my ($path, @events) = @{ $scenarios{$s} };
    my $i = 0;
    for my $p (@{ perms(0 .. $#events) }) {
        push @d, map { [ $path, ::C($events[$_], "$s-" . $i) ] } @$p;
        $i++;
    }
}
$main::orders = { map { my ($p, @e) = @{ $scenarios{$_} }; ($_ => (@e == 3 ? 6 : 2)) } keys %scenarios };
\@d
--- error_code eval
[ (200) x (5 * 18 + 2 * 4) ]
--- db_check
my %want = (
    bridged_out  => ['new', 'call_transfer'],
    cancel_out   => ['new', 'transfer_failed'],
    cancel_in    => ['new', 'transfer_failed'],
    drop_llm     => ['new', 'call_failed'],
    drop_conc    => ['new', 'call_failed'],
    noanswer_out => ['closed', undef],
    quiet_drop   => ['contacted', undef],
);
for my $s (sort keys %want) {
    my $rows = db_rows(q{SELECT t.status, o.reason, c.transferred, c.transfer_failed, c.call_failed,
                                c.transfer_destination, c.analyzed
                           FROM retell.tickets t JOIN retell.calls c USING (call_id)
                           LEFT JOIN retell.email_outbox o USING (call_id)
                          WHERE t.call_id LIKE ? ORDER BY t.call_id}, "$s-%");
    is(scalar @$rows, $main::orders->{$s}, "$name: $s: a call per order");
    is_deeply($rows->[$_], $rows->[0], "$name: $s: order $_ ends like order 0") for 1 .. $#$rows;
    is_deeply([ $rows->[0]{status}, $rows->[0]{reason} ], $want{$s}, "$name: $s: ticket and email");
}
is(db_value(q{SELECT transfer_destination FROM retell.calls WHERE call_id = 'bridged_out-0'}), '+14155550111',
   "$name: the transfer event's destination stored");
is(db_value(q{SELECT count(*) FROM retell.email_outbox}), 4 * 6 + 2, "$name: one email per call that needs a person");



=== TEST 26: a warm transfer on an outbound call: transfer_started opens nothing, transfer_bridged opens the ticket and queues the email while the call goes on, call_ended changes neither
--- deliveries eval
[ [ '/out', ::B('call_started', 'call_warm', outbound => 1) ] ]
--- error_code: 200
--- db_check
sub T {
    my ($event, %call) = @_;
    my $b = JSON::PP::decode_json(::B($event, 'call_warm', outbound => 1, %call));
    $b->{transfer_destination} = { number => '+14155550111', extension => undef };
    $b->{transfer_option} = { type => 'warm' };
    return JSON::PP->new->canonical->encode($b);
}
sub state { return db_row(q{SELECT t.status, (SELECT count(*) FROM retell.email_outbox o WHERE o.call_id = t.call_id) AS emails,
                                   (SELECT reason FROM retell.email_outbox o WHERE o.call_id = t.call_id) AS reason
                              FROM retell.tickets t WHERE t.call_id = 'call_warm'}) }
is_deeply(state(), { status => 'closed', emails => 0, reason => undef }, "$name: started: closed");
my ($s) = post('/out', T('transfer_started', call_status => 'ongoing'));
is($s, 204, "$name: transfer_started acknowledged");
is_deeply(state(), { status => 'closed', emails => 0, reason => undef }, "$name: transfer_started: still closed, no email");
($s) = post('/out', T('transfer_bridged', call_status => 'ongoing'));
is($s, 200, "$name: transfer_bridged applied");
is_deeply(state(), { status => 'new', emails => 1, reason => 'call_transfer' }, "$name: bridged: new, the email queued");
($s) = post('/out', ::B('call_ended', 'call_warm', outbound => 1, call_status => 'ended', disconnection_reason => 'transfer_bridged'));
is($s, 200, "$name: call_ended applied");
is_deeply(state(), { status => 'new', emails => 1, reason => 'call_transfer' }, "$name: ended: still new, still one email");
is(db_value(q{SELECT call_status FROM retell.calls WHERE call_id = 'call_warm'}), 'ended', "$name: the call ended");



=== TEST 27: the 192-entry tables: the function reads each combination of facts at the index the module's table is built for
ngx_http_retell_store.c builds the tables with call_failed 96,
transfer_failed 48, transferred 24, action_required 16/8/0, analyzed 4,
qualified 2, call_successful 1: each call here lands on a table whose
entries say their own index, so an index read elsewhere fails.
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ] ]
--- error_code: 200
--- db_check
my @status = qw(new qualified contacted resolved closed);
my @reason = ('', 'action_required', 'call_transfer', 'transfer_failed', 'call_failed');
my $digits_status = join '', map { $_ % 5 } 0 .. 191;
my $digits_email = join '', map { int($_ / 5) % 5 } 0 .. 191;
my $bad = 0;
for my $f (0 .. 191) {
    my ($cfail, $xfail, $transferred, $ar, $analyzed, $qualified, $ok) =
        (int($f / 96) % 2, int($f / 48) % 2, int($f / 24) % 2, int($f / 8) % 3, int($f / 4) % 2, int($f / 2) % 2, $f % 2);
    my ($got, $o) = ::apply_direct("wide-$f", $f, ok => $ok, qualified => $qualified, action => $ar,
                                   transferred => $transferred, analyzed => $analyzed,
                                   rules => [ $digits_status, $digits_email ],
                                   wide => [ $xfail, $cfail, 'everything' ]);
    my @want = ($status[$f % 5], $reason[int($f / 5) % 5]);
    $bad++, diag("$name: index $f: got $got/$o, want @want")
        unless $got eq $want[0] && $o eq $want[1];
}
is($bad, 0, "$name: every one of the 192 combinations read at its own index");
is(db_value(q{SELECT count(*) FROM retell.calls WHERE call_id LIKE 'wide-%' AND data_storage_setting = 'everything'}), 192,
   "$name: the storage setting stored");
