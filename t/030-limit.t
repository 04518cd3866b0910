# The sample configuration's rate limit (conf/retell-rate-limit.conf):
# 429 past the burst, and Retell's published address never throttled.
use lib 't/inc';
use Test::Nginx::Socket 'no_plan';
use Retell;

our $http_config = pg_http_config() . <<"_EOC_";
include $REPO/conf/retell-rate-limit.conf;
# lets the tests speak from Retell's address through X-Forwarded-For
set_real_ip_from 127.0.0.1;
real_ip_header X-Forwarded-For;
_EOC_

our $config = <<"_EOC_";
location = /api/webhooks/retell-inbound-ticket {
    limit_req zone=retell_webhooks burst=10 nodelay;
    retell_webhook inbound;
    retell_webhook_secret $SECRET;
}
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value(http_config => $http_config);
    $block->set_value(config => $config);
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a flood from one address gets 429 past the burst of 10
--- request eval
[ ("POST /api/webhooks/retell-inbound-ticket\n{}") x 13 ]
--- more_headers
X-Forwarded-For: 203.0.113.7
--- error_code eval
[ (401) x 11, 429, 429 ]



=== TEST 2: Retell's published address is never throttled
--- request eval
[ ("POST /api/webhooks/retell-inbound-ticket\n{}") x 13 ]
--- more_headers
X-Forwarded-For: 100.20.5.228
--- error_code eval
[ (401) x 13 ]
--- no_error_log
limiting requests
