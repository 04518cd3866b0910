# Signature checks (SPEC sections 2 and 3): 401 for a missing, malformed,
# wrong, stale or future signature; upper-case hex and every rotation key
# accepted; the secret never written to the error log.
use lib 't/inc';
use Test::Nginx::Socket 'no_plan';
use Retell;

our $body = Retell::sample('inbound-call_started');
our $secret = $SECRET;

# a key file as an operator writes one, with a line end
our $keyfile = "$REPO/build/test-retell.key";
open my $fh, '>', $keyfile or die "$keyfile: $!";
print $fh "key-from-file\n";
close $fh;

add_block_preprocessor(sub {
    my $block = shift;

    reset_db();

    $block->set_value(http_config => pg_http_config())
        unless defined $block->http_config;

    $block->set_value(config => <<"_EOC_") unless defined $block->config;
location = /in {
    retell_webhook inbound;
    retell_webhook_secret $secret;
    retell_webhook_secret second-key-after-rotation;
}
_EOC_

    $block->set_value(request => "POST /in\n$body")
        unless defined $block->request;
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a correct signature is accepted
--- more_headers eval
Retell::signed_headers($::body)
--- error_code: 200
--- response_body_like: ^\{"event":"call_started","call_id":"call_5c1f2b7e8a9d4e0fb3c6a1d2e4f50617"
--- no_error_log
[warn]
[error]



=== TEST 2: no signature header
--- more_headers
Content-Type: application/json
--- error_code: 401
--- response_body_like: ^\{"error":"invalid_signature","message":"missing X-Retell-Signature header"\}$
--- error_log eval
qr/\[warn\] .*retell webhook rejected from 127\.0\.0\.1: missing X-Retell-Signature header, client: 127\.0\.0\.1/



=== TEST 3: malformed header
--- more_headers
X-Retell-Signature: sha256=deadbeef
--- error_code: 401
--- response_body_like: "message":"malformed X-Retell-Signature header"
--- error_log
malformed X-Retell-Signature header



=== TEST 4: digest of another key
--- more_headers eval
Retell::signed_headers($::body, secret => 'not-the-secret')
--- error_code: 401
--- response_body_like: "message":"signature does not match"
--- error_log
signature does not match



=== TEST 5: digest of another body
--- more_headers eval
Retell::signed_headers($::body . ' ')
--- error_code: 401
--- response_body_like: signature does not match



=== TEST 6: stale timestamp, six minutes old
--- more_headers eval
Retell::signed_headers($::body, offset => -360_000)
--- error_code: 401
--- response_body_like: "message":"signature timestamp outside the tolerance"



=== TEST 7: timestamp six minutes in the future
--- more_headers eval
Retell::signed_headers($::body, offset => 360_000)
--- error_code: 401
--- response_body_like: outside the tolerance



=== TEST 8: four minutes old is within the default tolerance
--- more_headers eval
Retell::signed_headers($::body, offset => -240_000)
--- error_code: 200



=== TEST 9: retell_signature_tolerance shortens the window
--- config eval
"location = /in {
    retell_webhook inbound;
    retell_webhook_secret $::secret;
    retell_signature_tolerance 30s;
}"
--- more_headers eval
Retell::signed_headers($::body, offset => -60_000)
--- error_code: 401
--- response_body_like: outside the tolerance



=== TEST 10: upper-case hex digest
--- more_headers eval
my $h = Retell::signed_headers($::body);
$h =~ s/(d=)([0-9a-f]+)/$1\U$2/;
$h
--- error_code: 200



=== TEST 11: the second key of a rotation is accepted
--- more_headers eval
Retell::signed_headers($::body, secret => 'second-key-after-rotation')
--- error_code: 200



=== TEST 12: key read from retell_webhook_secret_file, trailing newline ignored
--- config eval
"location = /in {
    retell_webhook inbound;
    retell_webhook_secret_file $::keyfile;
}"
--- more_headers eval
Retell::signed_headers($::body, secret => 'key-from-file')
--- error_code: 200



=== TEST 13: keys set at server level are inherited by the location
--- config eval
"retell_webhook_secret $::secret;
location = /in {
    retell_webhook inbound;
}"
--- more_headers eval
Retell::signed_headers($::body)
--- error_code: 200



=== TEST 14: the secret never reaches the error log, even at debug level
--- log_level: debug
--- more_headers eval
Retell::signed_headers($::body, secret => 'wrong')
--- error_code: 401
--- no_error_log eval
[qr/\Q$::secret\E/, qr/second-key-after-rotation/]



=== TEST 15: the body is not logged with a 401
--- more_headers eval
Retell::signed_headers($::body, secret => 'wrong')
--- error_code: 401
--- no_error_log
Dana Whitfield
call_5c1f2b7e8a9d4e0fb3c6a1d2e4f50617
