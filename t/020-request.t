# The rest of the HTTP contract (SPEC section 3) short of the database:
# 405, 413, 400 with a JSON error body, 204 for events not applied, the
# 200 answer, and bodies spooled to a temp file.
use lib 't/inc';
use Test::Nginx::Socket 'no_plan';
use Retell;

our $secret = $SECRET;

sub req { my ($path, $body) = @_; return "POST $path\n$body" }

# a ~200 KB transcript, to be spooled with client_body_buffer_size 8k
our $big = Retell::sample('inbound-call_ended');
my $line = "User: the quick brown fox jumps over the lazy dog, again.\\n";
my $transcript = $line x (200_000 / length $line);
$big =~ s/"transcript":"/"transcript":"$transcript/;

add_block_preprocessor(sub {
    my $block = shift;

    reset_db();

    $block->set_value(http_config => pg_http_config())
        unless defined $block->http_config;

    $block->set_value(config => webhook_locations())
        unless defined $block->config;
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: GET is refused with 405 and Allow: POST
--- request
GET /in
--- error_code: 405
--- response_headers
Allow: POST
Content-Type: application/json
--- response_body
{"error":"method_not_allowed","message":"only POST is accepted"}



=== TEST 2: PUT with a signed body is still 405
--- request eval
"PUT /in\n" . Retell::sample('inbound-call_started')
--- more_headers eval
Retell::signed_headers(Retell::sample('inbound-call_started'))
--- error_code: 405
--- response_headers
Allow: POST



=== TEST 3: body over client_max_body_size is nginx's own 413
--- config eval
"location = /in {
    client_max_body_size 1k;
    retell_webhook inbound;
    retell_webhook_secret $::secret;
}"
--- request eval
::req('/in', Retell::sample('inbound-call_ended'))
--- more_headers eval
Retell::signed_headers(Retell::sample('inbound-call_ended'))
--- error_code: 413



=== TEST 4: a signed body that is not JSON
--- request eval
::req('/in', 'not json at all')
--- more_headers eval
Retell::signed_headers('not json at all')
--- error_code: 400
--- response_headers
Content-Type: application/json
--- response_body
{"error":"invalid_payload","message":"body is not valid JSON"}
--- error_log
retell webhook rejected: body is not valid JSON



=== TEST 5: a JSON array
--- request eval
::req('/in', '[{"event":"call_started"}]')
--- more_headers eval
Retell::signed_headers('[{"event":"call_started"}]')
--- error_code: 400
--- response_body
{"error":"invalid_payload","message":"body is not a JSON object"}



=== TEST 6: no call_id
--- request eval
::req('/in', '{"event":"call_started","call":{"agent_id":"a"}}')
--- more_headers eval
Retell::signed_headers('{"event":"call_started","call":{"agent_id":"a"}}')
--- error_code: 400
--- response_body
{"error":"invalid_payload","message":"\"call.call_id\" is missing or empty"}



=== TEST 7: wrong types are refused, not coerced
--- request eval
::req('/in', '{"event":"call_ended","call":{"call_id":"c1","duration_ms":"191000"}}')
--- more_headers eval
Retell::signed_headers('{"event":"call_ended","call":{"call_id":"c1","duration_ms":"191000"}}')
--- error_code: 400
--- response_body
{"error":"invalid_payload","message":"\"call.duration_ms\" must be an integer"}



=== TEST 8: call_analysis.call_successful as a string
--- request eval
::req('/in', '{"event":"call_analyzed","call":{"call_id":"c1","call_analysis":{"call_successful":"yes"}}}')
--- more_headers eval
Retell::signed_headers('{"event":"call_analyzed","call":{"call_id":"c1","call_analysis":{"call_successful":"yes"}}}')
--- error_code: 400
--- response_body_like: "call\.call_analysis\.call_successful\\" must be a boolean



=== TEST 9: a call_id over 128 bytes
--- request eval
my $b = '{"event":"call_started","call":{"call_id":"' . ('x' x 129) . '"}}';
::req('/in', $b)
--- more_headers eval
Retell::signed_headers('{"event":"call_started","call":{"call_id":"' . ('x' x 129) . '"}}')
--- error_code: 400
--- response_body_like: longer than 128 bytes



=== TEST 10: nesting deeper than the bound
--- request eval
my $b = '{"event":"call_started","call":{"call_id":"c1","metadata":' . ('[' x 40) . (']' x 40) . '}}';
::req('/in', $b)
--- more_headers eval
Retell::signed_headers('{"event":"call_started","call":{"call_id":"c1","metadata":' . ('[' x 40) . (']' x 40) . '}}')
--- error_code: 400
--- response_body_like: nested deeper than 32 levels



=== TEST 11: an unsigned bad body is 401, not 400: signature first
--- request eval
::req('/in', 'not json')
--- error_code: 401



=== TEST 12: transcript_updated is not applied
--- request eval
::req('/in', '{"event":"transcript_updated","call":{"call_id":"c1","transcript":"Agent: hi"}}')
--- more_headers eval
Retell::signed_headers('{"event":"transcript_updated","call":{"call_id":"c1","transcript":"Agent: hi"}}')
--- error_code: 204
--- response_body



=== TEST 13: transfer_started and unknown events are not applied
--- request eval
[ ::req('/out', '{"event":"transfer_started","call":{"call_id":"c1"}}'),
  ::req('/out', '{"event":"call_exploded","call":{"call_id":"c1"}}') ]
--- more_headers eval
[ Retell::signed_headers('{"event":"transfer_started","call":{"call_id":"c1"}}'),
  Retell::signed_headers('{"event":"call_exploded","call":{"call_id":"c1"}}') ]
--- error_code eval
[204, 204]



=== TEST 14: an event the module does not apply is acknowledged whatever its body holds (issue 18: Retell retries every non-2xx); an applied one must be well-formed
--- request eval
[ ::req('/in', '{"event":"transfer_started","call":{}}'),
  ::req('/in', '{"event":"transfer_bridged","call":{}}') ]
--- more_headers eval
[ Retell::signed_headers('{"event":"transfer_started","call":{}}'),
  Retell::signed_headers('{"event":"transfer_bridged","call":{}}') ]
--- error_code eval
[204, 400]



=== TEST 15: every sample is accepted on its endpoint
--- request eval
[ map { ::req(/^out/ ? '/out' : '/in', Retell::sample($_)) }
  qw(inbound-call_started inbound-call_ended
     inbound-call_analyzed-action_required
     inbound-call_analyzed-voicemail-anonymous
     outbound-call_ended-no_answer outbound-call_ended-transfer
     outbound-call_analyzed-interested) ]
--- more_headers eval
[ map { Retell::signed_headers(Retell::sample($_)) }
  qw(inbound-call_started inbound-call_ended
     inbound-call_analyzed-action_required
     inbound-call_analyzed-voicemail-anonymous
     outbound-call_ended-no_answer outbound-call_ended-transfer
     outbound-call_analyzed-interested) ]
--- error_code eval
[(200) x 7]
--- response_body_like eval
[ qr/"event":"call_started","call_id":"call_5c1f/,
  qr/"event":"call_ended","call_id":"call_5c1f/,
  qr/"event":"call_analyzed","call_id":"call_5c1f/,
  qr/"event":"call_analyzed","call_id":"call_9f8e/,
  qr/"event":"call_ended","call_id":"call_0e9d/,
  qr/"event":"call_ended","call_id":"call_3b2a/,
  qr/"event":"call_analyzed","call_id":"call_7a6b/ ]
--- no_error_log
[error]



=== TEST 16: a ~200 KB body spooled to a temp file verifies and parses
--- config eval
"location = /in {
    client_body_buffer_size 8k;
    client_max_body_size 1m;
    retell_webhook inbound;
    retell_webhook_secret $::secret;
}"
--- log_level: debug
--- request eval
::req('/in', $::big)
--- more_headers eval
Retell::signed_headers($::big)
--- error_code: 200
--- response_body_like: "call_id":"call_5c1f2b7e8a9d4e0fb3c6a1d2e4f50617"
--- error_log
a client request body is buffered to a temporary file
