# The bad-input catalogue (issue 9, docs/SECURITY.md): every kind of body,
# header and request that must never be stored.  Each one: a 4xx with a
# clear JSON error (or nginx's own 4xx for what nginx refuses before the
# module), a log line that says why and holds no secret, and no row in any
# table.  A body that can never be stored must never be answered 503.
use lib 't/inc';
use Test::Nginx::Socket 'no_plan';
use Retell;
use IO::Socket::INET;
use Time::HiRes qw(time);
use JSON::PP ();

log_level('info');
$SIG{PIPE} = 'IGNORE';      # nginx may answer 413 before the body is sent

my $preprocess = db_block_preprocessor(config => sub {
    webhook_locations(in => 'client_max_body_size 1m; client_body_buffer_size 1m;');
});
add_block_preprocessor(sub { $preprocess->(@_) });
add_response_body_check(\&db_check_hook);

no_shuffle();
run_tests();


# a delivery around a fragment of the call object (raw bytes allowed)
sub call_body {
    my ($inner) = @_;
    return '{"event":"call_ended","call":{"call_id":"call_bad_1",'
         . '"agent_id":"agent_8a1b2c3d4e5f60718293a4b5","direction":"inbound",'
         . '"from_number":"+14155550134",' . $inner . '}}';
}

sub analysis { return call_body('"call_analysis":{' . $_[0] . '}') }

sub nest { my ($n) = @_; return call_body('"metadata":' . ('[' x $n) . (']' x $n)) }

# a raw request, for what post() cannot say; returns (status, body)
sub raw_request {
    my ($text) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $ENV{TEST_NGINX_SERVER_PORT}, Timeout => 10) or die "connect: $!";
    print $sock $text;
    return post_finish($sock);
}

sub signed_request {
    my ($body, %o) = @_;
    my $sig = $o{sig} // Retell::sign($body, %o);
    return "POST /in HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
         . "Content-Type: application/json\r\n"
         . ($o{headers} // '') . "X-Retell-Signature: $sig\r\n"
         . ($o{chunked} ? "Transfer-Encoding: chunked\r\n\r\n$o{chunked}"
                        : "Content-Length: " . length($body) . "\r\n\r\n$body");
}

__DATA__

=== TEST 1: the catalogue: each a 4xx with a clear error, a log line without secrets, and no row anywhere
--- request
GET /in
--- error_code: 405
--- db_check
my @cases = (
    # [ name, body, status, error code, message pattern, sign options ]
    # nesting and numbers
    [ 'nesting past 32 levels', ::nest(31), 400, 'invalid_payload', qr/nested deeper than 32/ ],
    [ 'nesting 10,000 levels', ::nest(10000), 400, 'invalid_payload', qr/nested deeper than 32/ ],
    [ 'a number past numeric (1e999999)', ::call_body('"metadata":{"n":1e999999}'), 400, 'invalid_payload', qr/too large or too precise/ ],
    [ 'a number past numeric (1e131072)', ::call_body('"metadata":{"n":1e131072}'), 400, 'invalid_payload', qr/too large or too precise/ ],
    [ 'a number too precise (1.5e-16383)', ::call_body('"x":[1.5e-16383]'), 400, 'invalid_payload', qr/too large or too precise/ ],
    [ 'a 19-digit duration', ::call_body('"duration_ms":1234567890123456789'), 400, 'invalid_payload', qr/"call.duration_ms" must be an integer/ ],
    [ 'a fractional duration', ::call_body('"duration_ms":1.5'), 400, 'invalid_payload', qr/must be an integer/ ],
    [ 'a duration as a string', ::call_body('"duration_ms":"191000"'), 400, 'invalid_payload', qr/must be an integer/ ],
    [ 'a number with a leading zero', ::call_body('"duration_ms":0191'), 400, 'invalid_payload', qr/not valid JSON/ ],
    [ 'NaN', ::call_body('"duration_ms":NaN'), 400, 'invalid_payload', qr/not valid JSON/ ],
    # UTF-8
    [ 'overlong 2-byte form (C0 80)', ::call_body(qq{"agent_id":"a\xc0\x80b"}), 400, 'invalid_payload', qr/not valid UTF-8/ ],
    [ 'overlong 3-byte form (E0 80 80)', ::call_body(qq{"agent_id":"\xe0\x80\x80"}), 400, 'invalid_payload', qr/not valid UTF-8/ ],
    [ 'a raw surrogate (ED A0 80)', ::call_body(qq{"transcript":"\xed\xa0\x80"}), 400, 'invalid_payload', qr/not valid UTF-8/ ],
    [ 'past U+10FFFF (F4 90 80 80)', ::call_body(qq{"transcript":"\xf4\x90\x80\x80"}), 400, 'invalid_payload', qr/not valid UTF-8/ ],
    [ 'an F8 lead byte', ::call_body(qq{"transcript":"\xf8\x88\x80\x80\x80"}), 400, 'invalid_payload', qr/not valid UTF-8/ ],
    [ 'a truncated sequence', ::call_body(qq{"transcript":"\xe2\x82"}), 400, 'invalid_payload', qr/not valid UTF-8/ ],
    [ 'a lone continuation byte', ::call_body(qq{"transcript":"\x80"}), 400, 'invalid_payload', qr/not valid UTF-8/ ],
    [ 'invalid UTF-8 in a key', ::call_body(qq{"metadata":{"\xc1\x9a":1}}), 400, 'invalid_payload', qr/not valid UTF-8/ ],
    [ 'Latin-1, not UTF-8', ::call_body(qq{"call_summary":"caf\xe9"}), 400, 'invalid_payload', qr/not valid UTF-8/ ],
    [ 'a lone low surrogate escape', ::call_body('"transcript":"a\udc00b"'), 400, 'invalid_payload', qr/surrogate/ ],
    [ 'a high surrogate escape then A', ::call_body('"transcript":"a\ud800\u0041"'), 400, 'invalid_payload', qr/surrogate/ ],
    [ 'a high surrogate escape at the end', ::call_body('"metadata":{"k":"\ud800"}'), 400, 'invalid_payload', qr/surrogate/ ],
    # NUL
    [ 'a raw NUL byte', ::call_body(qq{"transcript":"a\x00b"}), 400, 'invalid_payload', qr/not valid JSON/ ],
    [ 'an escaped NUL in call_id', '{"event":"call_ended","call":{"call_id":"call\u0000bad"}}', 400, 'invalid_payload', qr/must not contain \\u0000/ ],
    [ 'an escaped NUL in a metadata key', ::call_body('"metadata":{"k\u0000":1}'), 400, 'invalid_payload', qr/must not contain \\u0000/ ],
    # duplicate keys the rules read
    [ 'two "event" keys', '{"event":"call_started","event":"call_ended","call":{"call_id":"call_bad_1"}}', 400, 'invalid_payload', qr/duplicate key "event"/ ],
    [ 'two "call" objects', '{"event":"call_ended","call":{"call_id":"call_bad_1"},"call":{"call_id":"call_bad_2"}}', 400, 'invalid_payload', qr/duplicate key "call"/ ],
    [ 'two call_id keys', ::call_body('"call_id":"call_bad_2"'), 400, 'invalid_payload', qr/duplicate key "call.call_id"/ ],
    [ 'two custom_analysis_data objects', ::analysis('"custom_analysis_data":{"action_required":true},"custom_analysis_data":{}'), 400, 'invalid_payload', qr/duplicate key "call.call_analysis.custom_analysis_data"/ ],
    [ 'two action_required keys', ::analysis('"custom_analysis_data":{"action_required":true,"action_required":false}'), 400, 'invalid_payload', qr/duplicate key "action_required" in "custom_analysis_data"/ ],
    # every known field with a wrong type
    [ 'event is a number', '{"event":1,"call":{"call_id":"call_bad_1"}}', 400, 'invalid_payload', qr/"event" must be a string/ ],
    [ 'call is a string', '{"event":"call_ended","call":"x"}', 400, 'invalid_payload', qr/"call" must be an object/ ],
    [ 'call_id is a number', '{"event":"call_ended","call":{"call_id":7}}', 400, 'invalid_payload', qr/"call.call_id" must be a string/ ],
    [ 'call_id is empty', '{"event":"call_ended","call":{"call_id":""}}', 400, 'invalid_payload', qr/"call.call_id" is missing or empty/ ],
    [ 'call_id is missing', '{"event":"call_ended","call":{}}', 400, 'invalid_payload', qr/"call.call_id" is missing/ ],
    [ 'event is missing', '{"call":{"call_id":"call_bad_1"}}', 400, 'invalid_payload', qr/"event" is missing/ ],
    [ 'call is missing', '{"event":"call_ended"}', 400, 'invalid_payload', qr/"call" is missing/ ],
    [ 'from_number is an object', ::call_body('"to_number":{}'), 400, 'invalid_payload', qr/"call.to_number" must be a string/ ],
    [ 'start_timestamp is a string', ::call_body('"start_timestamp":"now"'), 400, 'invalid_payload', qr/"call.start_timestamp" must be an integer/ ],
    [ 'call_analysis is an array', ::call_body('"call_analysis":[]'), 400, 'invalid_payload', qr/"call.call_analysis" must be an object/ ],
    [ 'custom_analysis_data is a string', ::analysis('"custom_analysis_data":"yes"'), 400, 'invalid_payload', qr/must be an object/ ],
    [ 'collected_dynamic_variables is an array', ::call_body('"collected_dynamic_variables":[1]'), 400, 'invalid_payload', qr/"call.collected_dynamic_variables" must be an object/ ],
    [ 'call_successful is a string', ::analysis('"call_successful":"yes"'), 400, 'invalid_payload', qr/must be a boolean/ ],
    [ 'transcript is a number', ::call_body('"transcript":5'), 400, 'invalid_payload', qr/"call.transcript" must be a string/ ],
    [ 'disconnection_reason is an array', ::call_body('"disconnection_reason":["a"]'), 400, 'invalid_payload', qr/must be a string/ ],
    # very long strings
    [ 'a 129-byte call_id', '{"event":"call_ended","call":{"call_id":"' . ('c' x 129) . '"}}', 400, 'invalid_payload', qr/"call.call_id" is longer than 128 bytes/ ],
    [ 'a 257-byte agent_id', ::call_body('"agent_id":"' . ('a' x 257) . '"') =~ s/"agent_id":"agent_8a1b2c3d4e5f60718293a4b5",//r, 400, 'invalid_payload', qr/"call.agent_id" is longer than 256 bytes/ ],
    [ 'a 4097-byte recording_url', ::call_body('"recording_url":"https://x/' . ('u' x 4090) . '"'), 400, 'invalid_payload', qr/"call.recording_url" is longer than 4096 bytes/ ],
    # the body's shape
    [ 'an empty body', '', 400, 'invalid_payload', qr/not valid JSON/ ],
    [ 'an array', '[]', 400, 'invalid_payload', qr/not a JSON object/ ],
    [ 'a string', '"call_ended"', 400, 'invalid_payload', qr/not a JSON object/ ],
    [ 'trailing garbage', ::call_body('"x":1') . ' x', 400, 'invalid_payload', qr/not valid JSON/ ],
    # yajl calls these whole (a string still to come), jsonb refuses them: were 503 for ever
    [ 'a quote after the object', ::call_body('"x":1') . '"', 400, 'invalid_payload', qr/not valid JSON/ ],
    [ 'an open string after the object', ::call_body('"x":1') . ' "}}\u0000', 400, 'invalid_payload', qr/not valid JSON/ ],
    [ 'not JSON', 'event=call_ended', 400, 'invalid_payload', qr/not valid JSON/ ],
    [ 'a comment', ::call_body('"x":1 /* note */'), 400, 'invalid_payload', qr/not valid JSON/ ],
    [ 'a form feed between tokens', ::call_body(qq{"x":\f1}), 400, 'invalid_payload', qr/not valid JSON/ ],
    # signatures
    [ 'no signature', ::call_body('"x":1'), 401, 'invalid_signature', qr/missing X-Retell-Signature header/, signature => undef ],
    [ 'a signature from another secret', ::call_body('"x":1'), 401, 'invalid_signature', qr/signature does not match/, secret => 'other-secret' ],
    [ 'a signature 10 minutes in the future', ::call_body('"x":1'), 401, 'invalid_signature', qr/outside the tolerance/, offset => 600_000 ],
    [ 'a signature 10 minutes old', ::call_body('"x":1'), 401, 'invalid_signature', qr/outside the tolerance/, offset => -600_000 ],
    [ 'a malformed signature', ::call_body('"x":1'), 401, 'invalid_signature', qr/malformed X-Retell-Signature header/, signature => 'v=1,d=zz' ],
    [ 'a body changed after signing', ::call_body('"x":1'), 401, 'invalid_signature', qr/signature does not match/, signature => Retell::sign(::call_body('"x":2')) ],
);

my $secret = $Retell::SECRET;
my $tables = q{SELECT (SELECT count(*) FROM retell.webhook_events) + (SELECT count(*) FROM retell.calls)
                    + (SELECT count(*) FROM retell.tickets) + (SELECT count(*) FROM retell.customers)
                    + (SELECT count(*) FROM retell.email_outbox)};
my $kinds = 0;

for my $c (@cases) {
    my ($what, $body, $status, $code, $msg, %sign) = @$c;
    my ($s, $b) = post('/in', $body, %sign);
    my $ok = is($s, $status, "$what: $status");
    my $e = eval { JSON::PP::decode_json($b) } // {};
    $ok &&= is($e->{error}, $code, "$what: a JSON error");
    $ok &&= like($e->{message} // '', $msg, "$what: says why");
    $ok &&= is(db_value($tables), 0, "$what: no row anywhere");
    $kinds++ if $ok;
}

# what nginx refuses before the module: its own 4xx, nothing stored
my @raw = (
    [ 'a body over client_max_body_size (1 MB of keys)', ::signed_request(::call_body(join ',', map { qq{"k$_":1} } 1 .. 120_000)), 413 ],
    [ 'a 2 MB transcript', ::signed_request(::call_body('"transcript":"' . ('t' x 2_000_000) . '"')), 413 ],
    [ 'a 70 KB header', ::signed_request(::call_body('"x":1'), headers => 'X-Filler: ' . ('f' x 70_000) . "\r\n"), 400 ],
    [ 'a chunked body with a bad chunk size', ::signed_request(::call_body('"x":1'), chunked => "zz\r\n{}\r\n0\r\n\r\n"), 400 ],
);

for my $c (@raw) {
    my ($what, $req, $status) = @$c;
    my ($s) = ::raw_request($req);
    my $ok = is($s, $status, "$what: $status");
    $ok &&= is(db_value($tables), 0, "$what: no row anywhere");
    $kinds++ if $ok;
}

# two signature headers, the first valid: refused, not guessed
{
    my $body = ::call_body('"x":1');
    my ($s, $b) = ::raw_request(::signed_request($body, headers => 'X-Retell-Signature: v=1,d=' . ('0' x 64) . "\r\n"));
    my $ok = is($s, 401, "several signature headers: 401");
    $ok &&= like($b, qr/several X-Retell-Signature headers/, "several signature headers: says why");
    $ok &&= is(db_value($tables), 0, "several signature headers: no row");
    $kinds++ if $ok;
}

cmp_ok($kinds, '>=', 40, "$name: at least 40 kinds of bad input refused ($kinds)");

my $log = block_log();
unlike($log, qr/\Q$secret\E/, "$name: the secret is in no log line");
unlike($log, qr/Agent: hello|ttttttttttttttt/, "$name: no body in the log");
like($log, qr/\[warn\] .*retell webhook rejected from 127\.0\.0\.1: signature does not match/, "$name: 401s logged at warn with the address");
like($log, qr/\[info\] .*retell webhook rejected: body is not valid UTF-8/, "$name: 400s logged at info with the reason");
my @worse = grep { /\[(error|crit|alert|emerg)\]/ && !/client intended to send too large body|client sent invalid chunked body/ } split /\n/, $log;
is(scalar(@worse), 0, "$name: nothing worse than a rejection") or diag(join "\n", @worse);



=== TEST 2: a valid chunked body is accepted: the signature covers the bytes, not the framing
--- request
GET /in
--- error_code: 405
--- db_check
my $body = Retell::sample('inbound-call_started');
my $chunks = join '', map { sprintf("%x\r\n%s\r\n", length $_, $_) } unpack('(a100)*', $body);
my ($s, $b) = ::raw_request(::signed_request($body, chunked => "${chunks}0\r\n\r\n"));
is($s, 200, "$name: 200");
is(db_value(q{SELECT count(*) FROM retell.webhook_events}), 1, "$name: stored once");
