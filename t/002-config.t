# Configuration errors fail "nginx -t" with a clear message (SPEC
# section 8); a complete configuration passes.
use strict;
use warnings;
use lib 't/inc';
use Test::More;
use File::Temp qw(tempdir);
use Retell;

my $nginx = $ENV{TEST_NGINX_BINARY} // '/usr/sbin/nginx';
my $module = $ENV{TEST_NGINX_LOAD_MODULES}
             // "$REPO/build/nginx/objs/ngx_http_retell_module.so";

sub nginx_t {
    my ($http, $location) = @_;
    my $dir = tempdir(CLEANUP => 1);
    mkdir "$dir/logs";
    open my $fh, '>', "$dir/nginx.conf" or die $!;
    print $fh <<"_EOC_";
load_module $module;
error_log $dir/logs/error.log;
pid $dir/logs/nginx.pid;
events {}
http {
    $http
    server {
        listen 127.0.0.1:1;
        location = /hook {
            $location
        }
    }
}
_EOC_
    close $fh;
    my $out = `$nginx -t -p $dir -c $dir/nginx.conf 2>&1`;
    return ($? == 0, $out);
}

my $pg = 'retell_postgres "host=127.0.0.1 port=5432 dbname=x";';

my @cases = (
    [ 'complete configuration', $pg,
      'retell_webhook inbound; retell_webhook_secret k;', 1,
      qr/test is successful/ ],
    [ 'no secret', $pg, 'retell_webhook inbound;', 0,
      qr/"retell_webhook" requires "retell_webhook_secret" or "retell_webhook_secret_file"/ ],
    [ 'no conninfo', '', 'retell_webhook inbound; retell_webhook_secret k;',
      0, qr/"retell_webhook" requires "retell_postgres" in the http block/ ],
    [ 'bad direction', $pg, 'retell_webhook sideways; retell_webhook_secret k;',
      0, qr/invalid value "sideways" in "retell_webhook" directive, it must be "inbound", "outbound", "auto" or "call_inbound"/ ],
    [ 'the inbound call webhook', $pg,
      'retell_webhook call_inbound; retell_webhook_secret k; retell_call_inbound_timeout 250ms;',
      1, qr/test is successful/ ],
    [ 'the inbound call webhook without a secret', $pg, 'retell_webhook call_inbound;', 0,
      qr/"retell_webhook" requires "retell_webhook_secret" or "retell_webhook_secret_file"/ ],
    [ 'a bad retell_call_inbound_timeout', $pg,
      'retell_webhook call_inbound; retell_webhook_secret k; retell_call_inbound_timeout soon;', 0,
      qr/"retell_call_inbound_timeout" directive invalid value/ ],
    [ 'retell_postgres_timeout 0', $pg,
      'retell_webhook inbound; retell_webhook_secret k; retell_postgres_timeout 0;', 0,
      qr/"retell_postgres_timeout" directive must be more than 0/ ],
    [ 'retell_call_inbound_timeout 0', $pg,
      'retell_webhook call_inbound; retell_webhook_secret k; retell_call_inbound_timeout 0ms;', 0,
      qr/"retell_call_inbound_timeout" directive must be more than 0/ ],
    [ 'retell_signature_tolerance 0', $pg,
      'retell_webhook inbound; retell_webhook_secret k; retell_signature_tolerance 0s;', 0,
      qr/"retell_signature_tolerance" directive must be more than 0/ ],
    [ 'retell_postgres_connect_timeout 0', $pg . ' retell_postgres_connect_timeout 0;',
      'retell_webhook inbound; retell_webhook_secret k;', 0,
      qr/"retell_postgres_connect_timeout" directive must be more than 0/ ],
    [ 'duplicate retell_webhook', $pg,
      'retell_webhook inbound; retell_webhook outbound; retell_webhook_secret k;',
      0, qr/"retell_webhook" directive is duplicate/ ],
    [ 'bad conninfo', 'retell_postgres "host=127.0.0.1 nonsense=1";',
      'retell_webhook inbound; retell_webhook_secret k;', 0,
      qr/invalid "retell_postgres" connection string: invalid connection option "nonsense"/ ],
    [ 'empty secret', $pg, 'retell_webhook inbound; retell_webhook_secret "";',
      0, qr/the Retell webhook secret must not be empty/ ],
    [ 'a directory as the secret file', $pg,
      'retell_webhook inbound; retell_webhook_secret_file /tmp;', 0,
      qr/secret file "\/tmp" is not a regular file/ ],
    [ 'a metrics zone too small', $pg . ' retell_metrics_zone 16k;',
      'retell_webhook inbound; retell_webhook_secret k;', 0,
      qr/"retell_metrics_zone" of 16384 bytes is too small, at least \d+k are needed/ ],
    [ 'missing secret file', $pg,
      'retell_webhook inbound; retell_webhook_secret_file /nonexistent/retell.key;',
      0, qr/open\(\) "\/nonexistent\/retell.key" failed/ ],
    [ 'bad tolerance', $pg,
      'retell_webhook inbound; retell_webhook_secret k; retell_signature_tolerance soon;',
      0, qr/"retell_signature_tolerance" directive invalid value/ ],
    [ 'pool of zero', "$pg retell_postgres_pool 0;",
      'retell_webhook inbound; retell_webhook_secret k;', 0,
      qr/value must be between 1 and 1024 in .*nginx.conf:6/ ],
    [ 'company zero', $pg,
      'retell_webhook inbound; retell_webhook_secret k; retell_company 0;', 0,
      qr/value must be between 1 and \d+ in .*nginx.conf:10/ ],
    [ 'country code 1000', $pg,
      'retell_webhook inbound; retell_webhook_secret k; retell_default_country_code 1000;',
      0, qr/value must be between 1 and 999 in .*nginx.conf:10/ ],
    [ 'retell_postgres outside http', '',
      'retell_postgres "host=x"; retell_webhook inbound; retell_webhook_secret k;',
      0, qr/"retell_postgres" directive is not allowed here/ ],
    [ 'a location without retell_webhook needs nothing', '', 'return 204;', 1,
      qr/test is successful/ ],
    [ 'complete email delivery',
      "$pg retell_smtp_server 127.0.0.1:2525; retell_smtp_from a\@b.example; retell_smtp_starttls required; retell_ticket_url https://x.example/t/; retell_smtp_timeout 10s; retell_smtp_max_attempts 5; retell_smtp_backoff 1m;",
      'return 204;', 1, qr/test is successful/ ],
    [ 'smtp server without from', "$pg retell_smtp_server 127.0.0.1:2525;",
      'return 204;', 0, qr/"retell_smtp_server" requires "retell_smtp_from"/ ],
    [ 'smtp server without postgres',
      'retell_smtp_server 127.0.0.1:2525; retell_smtp_from a@b.example;',
      'return 204;', 0, qr/"retell_smtp_server" requires "retell_postgres"/ ],
    [ 'invalid from', "$pg retell_smtp_server 127.0.0.1:2525; retell_smtp_from 'a b\@c';",
      'return 204;', 0, qr/invalid "retell_smtp_from" address "a b\@c"/ ],
    [ 'bad starttls', "$pg retell_smtp_starttls maybe;", 'return 204;', 0,
      qr/invalid value "maybe" in .*nginx.conf:6/ ],
    [ 'bad smtp server', "$pg retell_smtp_server 127.0.0.1:99999;", 'return 204;', 0,
      qr/invalid port in "127.0.0.1:99999" of "retell_smtp_server"/ ],
    [ 'missing password file', "$pg retell_smtp_auth user /nonexistent/pw;", 'return 204;', 0,
      qr/open\(\) "\/nonexistent\/pw" failed/ ],
    [ 'attempts of zero', "$pg retell_smtp_max_attempts 0;", 'return 204;', 0,
      qr/value must be between 1 and 100/ ],
    [ 'a service file is not read by the worker', 'retell_postgres "service=retell dbname=x";',
      'retell_webhook inbound; retell_webhook_secret k;', 0,
      qr/a service in "retell_postgres" is not supported: libpq would read the service file/ ],
    [ 'host and port lists that do not match',
      'retell_postgres "host=127.0.0.1,127.0.0.2 port=1,2,3 dbname=x";',
      'retell_webhook inbound; retell_webhook_secret k;', 0,
      qr/"retell_postgres": the host, hostaddr and port lists do not match/ ],
    [ 'connect timeout', "$pg retell_postgres_connect_timeout 1500ms;",
      'retell_webhook inbound; retell_webhook_secret k;', 1, qr/test is successful/ ],
    [ 'bad connect timeout', "$pg retell_postgres_connect_timeout soon;",
      'retell_webhook inbound; retell_webhook_secret k;', 0,
      qr/"retell_postgres_connect_timeout" directive invalid value/ ],
    [ 'a body buffer smaller than the largest body: warned',
      "$pg client_max_body_size 1m; client_body_buffer_size 64k;",
      'retell_webhook inbound; retell_webhook_secret k;', 1,
      qr/\[warn\] .*"client_body_buffer_size" 65536 is smaller than "client_max_body_size" 1048576 on a "retell_webhook" location: larger bodies are read back from a temporary file with a blocking read/ ],
    [ 'smtp auth without a trusted certificate',
      "$pg retell_smtp_server 127.0.0.1:2525; retell_smtp_from a\@b.example; retell_smtp_auth u $REPO/t/samples/inbound-call_started.json;",
      'return 204;', 0,
      qr/"retell_smtp_auth" requires "retell_smtp_trusted_certificate": the password is sent only over TLS whose certificate is verified/ ],
    [ 'smtp auth with starttls off',
      "$pg retell_smtp_server 127.0.0.1:2525; retell_smtp_from a\@b.example; retell_smtp_starttls off; retell_smtp_auth u $REPO/t/samples/inbound-call_started.json;",
      'return 204;', 0,
      qr/"retell_smtp_auth" with "retell_smtp_starttls off" would send the password in clear/ ],
    [ 'smtp auth insecure, explicitly',
      "$pg retell_smtp_server 127.0.0.1:2525; retell_smtp_from a\@b.example; retell_smtp_starttls off; retell_smtp_auth u $REPO/t/samples/inbound-call_started.json insecure;",
      'return 204;', 1, qr/test is successful/ ],
    [ 'smtp auth bad third parameter',
      "$pg retell_smtp_server 127.0.0.1:2525; retell_smtp_from a\@b.example; retell_smtp_auth u $REPO/t/samples/inbound-call_started.json sometimes;",
      'return 204;', 0, qr/invalid parameter "sometimes" in "retell_smtp_auth", it can only be "insecure"/ ],
    [ 'smtp helo name with a space',
      "$pg retell_smtp_server 127.0.0.1:2525; retell_smtp_from a\@b.example; retell_smtp_helo 'mail host';",
      'return 204;', 0, qr/invalid "retell_smtp_helo" name "mail host"/ ],
    [ 'smtp helo name',
      "$pg retell_smtp_server 127.0.0.1:2525; retell_smtp_from a\@b.example; retell_smtp_helo mta.example.com;",
      'return 204;', 1, qr/test is successful/ ],
    [ 'smtp directives are http-level only', $pg,
      'retell_smtp_from a@b.example; return 204;', 0,
      qr/"retell_smtp_from" directive is not allowed here/ ],
);

for my $c (@cases) {
    my ($name, $http, $location, $ok, $re) = @$c;
    my ($passed, $out) = nginx_t($http, $location);
    is($passed ? 1 : 0, $ok, "$name: nginx -t " . ($ok ? 'passes' : 'fails'));
    like($out, $re, "$name: message");
}

# equal sizes: no warning
{
    my ($passed, $out) = nginx_t("$pg client_max_body_size 1m; client_body_buffer_size 1m;",
                                 'retell_webhook inbound; retell_webhook_secret k;');
    ok($passed, 'equal body sizes: nginx -t passes');
    unlike($out, qr/\[warn\]/, 'equal body sizes: no warning');
}

# an empty secret file
{
    my $dir = tempdir(CLEANUP => 1);
    open my $fh, '>', "$dir/empty.key" or die $!;
    print $fh "\n";
    close $fh;
    my ($passed, $out) = nginx_t($pg,
        "retell_webhook inbound; retell_webhook_secret_file $dir/empty.key;");
    ok(!$passed, 'empty secret file: nginx -t fails');
    like($out, qr/secret file ".*empty.key" is empty/, 'empty secret file: message');
}

done_testing();
