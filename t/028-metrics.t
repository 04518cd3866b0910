# Metrics in the Prometheus text format (issue 20, item 1): the counters
# live in a shared zone, summed over the workers; each moves by exactly
# what a test did; promtool accepts the output; the values survive a
# reload, and another zone size after a reload starts fresh.
#
# A plain Test::More program: its tests scrape between requests, kill
# workers and reload nginx with other configurations; each runs its own
# nginx (t/inc/NginxRun.pm, two workers) and TESTs 2, 4 and 5 one more
# (Retell::nginx_start).
use strict;
use warnings;
use lib 't/inc';
use Test::More;
use Retell;
use NginxRun;
use Time::HiRes ();

sub B { Retell::event_body(@_) }

# one test: two workers, the two endpoints, /metrics and /fast
sub metrics_block {
    my ($name, %o) = @_;
    block($name, workers => 2,
          http => Retell::pg_http_config(),
          config => Retell::webhook_locations() . "location = /metrics { retell_metrics; }\n"
                    . "location = /fast { return 200 \"fast\\n\"; }\n",
          %o);
}

# a scrape: (series => value), the raw text and the Content-Type
sub scrape {
    my (%o) = @_;
    require IO::Socket::INET;
    my $port = $o{port} // $ENV{TEST_NGINX_SERVER_PORT} // $ENV{TEST_NGINX_PORT} // 1984;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 10) or return;
    print $sock "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
    local $/;
    my $resp = <$sock> // '';
    my ($head, $body) = $resp =~ /\A(.*?)\r\n\r\n(.*)\z/s or return;
    my %m = map { /^(\S+) (\S+)$/ ? ($1 => $2) : () } grep { !/^#/ } split /\n/, $body;
    my ($type) = $head =~ /^Content-Type: ([^\r\n]*)/mi;
    return (\%m, $body, $type);
}

sub req { my ($e, $o) = @_; return qq{retell_webhook_requests_total{endpoint="$e",outcome="$o"}} }

metrics_block('TEST 1: each counter moves by exactly what was done, over two workers; promtool accepts the output; every histogram\'s _count is its +Inf bucket',
    test => sub {
        my ($name) = @_;
        my ($m0, $text0, $type) = scrape();
        is($type, 'text/plain; version=0.0.4; charset=utf-8', "$name: the content type Prometheus 3 wants");
        open my $fh, '>', "$ENV{TEST_NGINX_PG_DIR}.metrics" or die $!;
        print $fh $text0;
        close $fh;
        my $lint = `promtool check metrics < $ENV{TEST_NGINX_PG_DIR}.metrics 2>&1`;
        is($?, 0, "$name: promtool check metrics accepts it") or diag($lint);
        unlink "$ENV{TEST_NGINX_PG_DIR}.metrics";

        post('/in', ::B('call_started', "call_m_$_")) for 1 .. 3;
        post('/in', ::B('call_started', 'call_m_1'));
        post('/out', ::B('call_started', 'call_m_out', outbound => 1));
        post('/in', ::B('call_started', 'call_m_x', agent_id => 'agent_nowhere'));
        post('/in', '{"event":"chat_ended","chat":{"chat_id":"c"}}');
        post('/in', ::B('call_started', 'call_m_9'), secret => 'another');
        post('/in', 'not json');
        get('/in');

        # the access phase of the last request is over once its answer is read;
        # its log phase may still be running: wait for the count
        my %want = (::req('inbound', 'applied') => 3, ::req('inbound', 'duplicate') => 1,
                    ::req('outbound', 'applied') => 1, ::req('inbound', 'unrouted') => 1,
                    ::req('inbound', 'ignored') => 1, ::req('inbound', 'bad_signature') => 1,
                    ::req('inbound', 'bad_request') => 2);
        my $m1;
        wait_for(sub { ($m1) = scrape(); $m1->{ ::req('inbound', 'bad_request') } - $m0->{ ::req('inbound', 'bad_request') } >= 2 }, 5);
        for my $k (sort keys %want) {
            is($m1->{$k} - $m0->{$k}, $want{$k}, "$name: $k moved by $want{$k}");
        }
        is($m1->{'retell_webhook_request_duration_seconds_count{endpoint="inbound"}'}
           - $m0->{'retell_webhook_request_duration_seconds_count{endpoint="inbound"}'}, 9, "$name: nine inbound requests timed");
        cmp_ok($m1->{'retell_postgres_statements_total{result="ok"}'} - $m0->{'retell_postgres_statements_total{result="ok"}'}, '>=', 6,
               "$name: the statements counted");
        is($m1->{'retell_postgres_batch_size_count'} - $m0->{'retell_postgres_batch_size_count'},
           $m1->{'retell_postgres_batch_size_sum'} - $m0->{'retell_postgres_batch_size_sum'}, "$name: deliveries alone: one each");
        for my $h (grep { /_count/ } keys %$m1) {
            (my $inf = $h) =~ s/_count(\{(.*)\})?$/'_bucket{' . ($2 ? "$2," : '') . 'le="+Inf"}'/e;
            is($m1->{$h}, $m1->{$inf}, "$name: $h is its +Inf bucket");
        }
        like($m1->{'retell_build_info{version="0.18",nginx_version="' . ((`$ENV{TEST_NGINX_BINARY} -v 2>&1` =~ m{nginx/(\S+)})[0]) . '"}'}, qr/^1$/, "$name: build_info");
        is($m1->{retell_metrics_zone_created_seconds}, $m0->{retell_metrics_zone_created_seconds}, "$name: one zone all along");
    });


metrics_block('TEST 2: the counters survive a reload; another zone size after a reload starts them again, and nginx goes on',
    test => sub {
        my ($name) = @_;
        my $port = ($ENV{TEST_NGINX_SERVER_PORT} // $ENV{TEST_NGINX_PORT} // 1984) + 11;
        my $http = sub { my ($zone) = @_; Retell::pg_http_config() . ($zone ? "retell_metrics_zone $zone;\n" : '') . <<~"_EOC_" };
        server {
            listen 127.0.0.1:$port;
            location = /in { retell_webhook inbound; retell_webhook_secret $Retell::SECRET; }
            location = /metrics { retell_metrics; }
        }
        _EOC_
        my $n = Retell::nginx_start(port => $port + 1, workers => 2, http => $http->(''));
        post('/in', ::B('call_started', "call_r_$_"), port => $port) for 1 .. 2;
        my $applied = ::req('inbound', 'applied');
        my $m;
        ok(wait_for(sub { ($m) = ::scrape(port => $port); ($m->{$applied} // 0) == 2 }, 5), "$name: two applied");
        my $created = $m->{retell_metrics_zone_created_seconds};
        my ($master) = `cat $n->{dir}/logs/nginx.pid` =~ /(\d+)/;
        Retell::nginx_signal($n, 'reload');
        ok(wait_for(sub { `ps -o pid= --ppid $master | wc -l` + 0 == 2 && `grep -c 'gracefully shutting down' $n->{error_log}` >= 2 }, 10),
           "$name: the old workers left");
        ($m) = ::scrape(port => $port);
        is($m->{$applied}, 2, "$name: after the reload, still two");
        is($m->{retell_metrics_zone_created_seconds}, $created, "$name: the same zone");
        open my $fh, '>', "$n->{dir}/nginx.conf.new" or die $!;
        my $conf = do { local $/; open my $in, '<', "$n->{dir}/nginx.conf" or die $!; <$in> };
        $conf =~ s/retell_postgres "/retell_metrics_zone 128k;\nretell_postgres "/;
        print $fh $conf;
        close $fh;
        rename "$n->{dir}/nginx.conf.new", "$n->{dir}/nginx.conf" or die $!;
        # the zone's creation time has a second's resolution: the next one
        wait_for(sub { int(Time::HiRes::time()) > $created }, 3);
        Retell::nginx_signal($n, 'reload');
        ok(wait_for(sub { `ps -o pid= --ppid $master | wc -l` + 0 == 2 && `grep -c 'gracefully shutting down' $n->{error_log}` >= 4 }, 10),
           "$name: the old workers left again");
        ok(wait_for(sub { ($m) = ::scrape(port => $port); defined $m && $m->{retell_metrics_zone_created_seconds} != $created }, 10),
           "$name: another size: a new zone");
        is($m->{$applied}, 0, "$name: the counters start again");
        post('/in', ::B('call_started', 'call_r_3'), port => $port);
        ok(wait_for(sub { ($m) = ::scrape(port => $port); ($m->{$applied} // 0) == 1 }, 5), "$name: and count");
        unlike(do { local $/; open my $e, '<', $n->{error_log}; <$e> }, qr/\[(alert|crit|emerg)\]/, "$name: no alert");
        Retell::nginx_stop($n);
    });


metrics_block('TEST 3: the gauges are the workers alive\'s: a worker killed with SIGKILL leaves nothing wrong behind',
    test => sub {
        my ($name) = @_;
        post('/in', ::B('call_started', "call_g_$_")) for 1 .. 4;
        my $m;
        ok(wait_for(sub { ($m) = scrape(); ($m->{retell_workers} // 0) == 2 && ($m->{'retell_postgres_connections{state="idle"}'} // 0) >= 1 }, 5),
           "$name: two workers publish; the connections they opened are idle");
        is($m->{retell_postgres_deliveries_waiting}, 0, "$name: nothing waits");
        is($m->{retell_postgres_circuit_open}, 0, "$name: no circuit open");
        my $idle = $m->{'retell_postgres_connections{state="idle"}'};
        my $root = $ENV{TEST_NGINX_SERVER_ROOT} // $ENV{TEST_NGINX_SERVROOT} // "$Retell::REPO/t/servroot";
        my ($master) = `cat $root/logs/nginx.pid` =~ /(\d+)/;
        my @workers = map { /(\d+)/ ? $1 : () } `ps -o pid= --ppid $master`;
        is(scalar @workers, 2, "$name: two workers");
        kill 'KILL', $workers[0];
        ok(wait_for(sub { my @w = map { /(\d+)/ ? $1 : () } `ps -o pid= --ppid $master`; @w == 2 && !grep { $_ == $workers[0] } @w }, 10),
           "$name: the master started another");
        ok(wait_for(sub { ($m) = scrape(); ($m->{retell_workers} // 0) == 2 }, 5), "$name: two workers publish, the dead one not counted");
        cmp_ok($m->{'retell_postgres_connections{state="idle"}'}, '<=', $idle, "$name: the dead worker's connections not counted");
    });


metrics_block('TEST 4: retell_metrics_zone off: no zone, nothing counted, deliveries go on, a reload there and back works; retell_metrics with it off is refused at configuration',
    test => sub {
        my ($name) = @_;
        my $port = ($ENV{TEST_NGINX_SERVER_PORT} // $ENV{TEST_NGINX_PORT} // 1984) + 13;
        my $http = sub { my ($zone, $scrape) = @_; Retell::pg_http_config() . "retell_metrics_zone $zone;\n" . <<~"_EOC_" . ($scrape ? "location = /metrics { retell_metrics; }\n}\n" : "}\n") };
        server {
            listen 127.0.0.1:$port;
            location = /in { retell_webhook inbound; retell_webhook_secret $Retell::SECRET; }
        _EOC_
        my $n = Retell::nginx_start(port => $port + 1, workers => 2, http => $http->('off', 0));
        my $conf = "$n->{dir}/nginx.conf";
        my $text = do { local $/; open my $in, '<', $conf or die $!; <$in> };
        is((post('/in', ::B('call_started', 'call_off_1'), port => $port))[0], 200, "$name: a delivery with no zone");
        is(db_value(q{SELECT count(*) FROM retell.call_records WHERE call_id = 'call_off_1'}), 1, "$name: stored");
        my $write = sub { open my $fh, '>', "$conf.new" or die $!; print $fh $_[0]; close $fh; rename "$conf.new", $conf or die $! };
        (my $scraping = $text) =~ s/location = \/in /location = \/metrics { retell_metrics; }\n    location = \/in /;
        $write->($scraping);
        my $t = `$ENV{TEST_NGINX_BINARY} -t -p $n->{dir} -c $conf 2>&1`;
        like($t, qr/"retell_metrics" needs a zone, and "retell_metrics_zone" is off/, "$name: retell_metrics with the zone off: nginx -t says why");
        (my $on = $scraping) =~ s/retell_metrics_zone off;/retell_metrics_zone 64k;/;
        my ($master) = `cat $n->{dir}/logs/nginx.pid` =~ /(\d+)/;
        # the old workers accept until they are told to quit: wait for them to go
        my $reloaded = sub { my ($k) = @_; wait_for(sub { `ps -o pid= --ppid $master | wc -l` + 0 == 2 && `grep -c 'gracefully shutting down' $n->{error_log}` >= $k }, 10) };
        $write->($on);
        Retell::nginx_signal($n, 'reload');
        ok($reloaded->(2), "$name: the old workers left");
        my $m;
        ok(wait_for(sub { ($m) = ::scrape(port => $port); defined $m }, 10), "$name: the zone on after a reload: scraped");
        is((post('/in', ::B('call_started', 'call_off_2'), port => $port))[0], 200, "$name: a delivery");
        ok(wait_for(sub { ($m) = ::scrape(port => $port); ($m->{::req('inbound', 'applied')} // 0) == 1 }, 5), "$name: counted once");
        $write->($text);
        Retell::nginx_signal($n, 'reload');
        ok($reloaded->(4), "$name: and again");
        ok(wait_for(sub { (::scrape(port => $port))[1] !~ /retell_build_info/ }, 10), "$name: off again: no metrics location");
        is((post('/in', ::B('call_started', 'call_off_3'), port => $port))[0], 200, "$name: a delivery after");
        unlike(do { local $/; open my $e, '<', $n->{error_log}; <$e> }, qr/\[(alert|crit|emerg)\]|exited on signal/, "$name: no alert, no worker lost");
        Retell::nginx_stop($n);
    });


metrics_block('TEST 5: a reload that fails after making a new zone: the workers the master starts later count into the old one, not into freed memory',
    test => sub {
        my ($name) = @_;
        require IO::Socket::INET;
        my $port = ($ENV{TEST_NGINX_SERVER_PORT} // $ENV{TEST_NGINX_PORT} // 1984) + 15;
        my $http = Retell::pg_http_config() . <<~"_EOC_";
        server {
            listen 127.0.0.1:$port;
            location = /in { retell_webhook inbound; retell_webhook_secret $Retell::SECRET; }
            location = /metrics { retell_metrics; }
        }
        _EOC_
        my $n = Retell::nginx_start(port => $port + 1, workers => 1, http => $http);
        my $conf = "$n->{dir}/nginx.conf";
        my $applied = ::req('inbound', 'applied');
        is((post('/in', ::B('call_started', 'call_fr_1'), port => $port))[0], 200, "$name: a delivery");
        my $m;
        ok(wait_for(sub { ($m) = ::scrape(port => $port); ($m->{$applied} // 0) == 1 }, 5), "$name: counted");
        # another size (a new zone is made) and a port held here: the cycle fails at bind()
        my $busy = IO::Socket::INET->new(Listen => 5, LocalAddr => '127.0.0.1', LocalPort => $port + 2, ReuseAddr => 1) or die "port: $!";
        my $text = do { local $/; open my $in, '<', $conf or die $!; <$in> };
        (my $bad = $text) =~ s/retell_postgres "/retell_metrics_zone 128k;\nretell_postgres "/;
        $bad =~ s/server \{\n    listen 127.0.0.1:$port;/server { listen 127.0.0.1:@{[ $port + 2 ]}; return 204; }\nserver {\n    listen 127.0.0.1:$port;/;
        open my $fh, '>', "$conf.new" or die $!; print $fh $bad; close $fh; rename "$conf.new", $conf or die $!;
        Retell::nginx_signal($n, 'reload');
        ok(wait_for(sub { `grep -c 'still could not bind' $n->{error_log}` + 0 >= 1 }, 15), "$name: the reload failed at bind()");
        my ($master) = `cat $n->{dir}/logs/nginx.pid` =~ /(\d+)/;
        my ($worker) = map { /(\d+)/ ? $1 : () } `ps -o pid= --ppid $master`;
        kill 'KILL', $worker;
        ok(wait_for(sub { my @w = map { /(\d+)/ ? $1 : () } `ps -o pid= --ppid $master`; @w == 1 && $w[0] != $worker }, 10), "$name: the master started another worker");
        is((post('/in', ::B('call_started', 'call_fr_2'), port => $port))[0], 200, "$name: a delivery to it");
        ok(wait_for(sub { ($m) = ::scrape(port => $port); ($m->{$applied} // 0) == 2 }, 5), "$name: counted in the old zone: two");
        my $log = do { local $/; open my $e, '<', $n->{error_log}; <$e> };
        my @lost = $log =~ /exited on signal (\d+)/g;
        is_deeply(\@lost, [9], "$name: only the worker killed here was lost");
        close $busy;
        Retell::nginx_stop($n);
    });

done_testing();
