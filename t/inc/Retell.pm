package Retell;

# Helpers shared by the t/*.t files: sample payloads, Retell signatures,
# and (with a test database) DBI access.  Works with the CPAN
# Test::Nginx and with the subset under t/lib alike.

use strict;
use warnings;
use Digest::SHA qw(hmac_sha256_hex);
use Time::HiRes ();
use File::Basename qw(dirname);
use Cwd qw(abs_path);
use Exporter 'import';

our @EXPORT = qw(sample sign signed_headers now_ms $SECRET $REPO $PG
                 pg_http_config dbh reset_db db_value db_row db_rows
                 post get post_start post_finish with_call_id pg_stop pg_start
                 event_body concurrent_posts db_check_hook
                 deliveries_to_requests mark_log block_log
                 smtp_start smtp_stop smtp_messages parse_mail wait_for
                 $SMTP_PORT smtp_http_config webhook_locations
                 db_block_preprocessor lock_rows pg_log_mark pg_log pg_logged
                 pg_logging_http_config metrics_scrape);

# also, called with their package: queue_rows nginx_start nginx_signal
# nginx_stop

our $REPO = abs_path(dirname(__FILE__) . '/../..');
our $SECRET = 'test-secret-0f8e2c';

our $SMTP_PORT = $ENV{TEST_NGINX_SMTP_PORT} // 12525;

# the test cluster that t/run started (tools/pg-cluster)
our $PG = $ENV{TEST_NGINX_PG_CONNINFO}
          // 'host=127.0.0.1 port=15432 user=postgres dbname=retell_test';

sub now_ms { int(Time::HiRes::time() * 1000) }

# with the body buffer as large as Test::Nginx's client_max_body_size
# (30M): bodies stay in memory, as docs/postgres.md recommends, and nginx
# does not warn at every start
sub pg_http_config { return qq{retell_postgres "$PG";\nclient_body_buffer_size 30m;\n} }

# one handle per connection string: "local $Retell::PG = ..." points
# these helpers (and Load::check_db) at another database
my %dbh;

sub dbh {
    my $dbh = $dbh{$PG};
    return $dbh if $dbh && $dbh->ping;
    require DBI;
    my %kv = map { split /=/, $_, 2 } split ' ', $PG;
    my $user = delete $kv{user} // 'postgres';
    my $dsn = 'dbi:Pg:' . join ';', map { "$_=$kv{$_}" } sort keys %kv;
    $dbh = DBI->connect($dsn, $user, '',
                        { RaiseError => 1, AutoCommit => 1, PrintError => 0,
                          pg_server_prepare => 0 });
    $dbh->do('SET client_min_messages = warning');
    return $dbh{$PG} = $dbh;
}

sub db_value { my ($sql, @bind) = @_; return (dbh()->selectrow_array($sql, undef, @bind))[0] }
sub db_row { my ($sql, @bind) = @_; return dbh()->selectrow_hashref($sql, undef, @bind) }
sub db_rows { my ($sql, @bind) = @_; return dbh()->selectall_arrayref($sql, { Slice => {} }, @bind) }

# Empty tables and the companies and agents the samples route to:
#   1 Parkview  notifications on, two valid recipients and one invalid
#   2 Quiet     notifications off
#   3 Nobody    notifications on, no valid recipient
sub reset_db {
    my $db = dbh();
    $db->do('TRUNCATE retell.email_outbox, retell.webhook_events,
                      retell.tickets, retell.calls, retell.customers,
                      retell.agents, retell.company_numbers,
                      retell.companies RESTART IDENTITY');
    $db->do(q{INSERT INTO retell.companies
                  (id, name, email_notifications_enabled, email_recipients)
              VALUES (1, 'Parkview', true,
                      '{ops@parkview.test,"not an address",leasing@parkview.test}'),
                     (2, 'Quiet', false, '{ops@quiet.test}'),
                     (3, 'Nobody', true, '{nobody,"@bad"}')});
    $db->do(q{SELECT setval('retell.companies_id_seq', 3)});
    $db->do(q{INSERT INTO retell.agents VALUES
                  ('agent_8a1b2c3d4e5f60718293a4b5', 1),
                  ('agent_2f3e4d5c6b7a8091a2b3c4d5', 1),
                  ('agent_quiet', 2), ('agent_nobody', 3)});
}

# a sample with another call_id (and optionally other fields replaced)
sub with_call_id {
    my ($body, $call_id, %set) = @_;
    $body =~ s/"call_id":"[^"]*"/"call_id":"$call_id"/;
    while (my ($k, $v) = each %set) {
        $body =~ s/"$k":("[^"]*"|[^,}]*)/"$k":$v/ or die "no $k in body";
    }
    return $body;
}

# a compact delivery: event_body('call_analyzed', 'call_x', inbound => 1,
# call_analysis => {...}, ...); inbound or outbound picks the numbers
sub event_body {
    my ($event, $call_id, %call) = @_;
    require JSON::PP;
    my $outbound = delete $call{outbound};
    delete $call{inbound};
    my %base = $outbound
        ? (agent_id => 'agent_2f3e4d5c6b7a8091a2b3c4d5',
           direction => 'outbound', from_number => '+14155550199',
           to_number => '+1 510 555 0148')
        : (agent_id => 'agent_8a1b2c3d4e5f60718293a4b5',
           direction => 'inbound', from_number => '+1 (415) 555-0134',
           to_number => '+14155550100');
    my $call = { call_id => $call_id, %base, %call };
    delete $call->{$_} for grep { !defined $call->{$_} } keys %$call;
    return JSON::PP->new->utf8->canonical->encode({ event => $event,
                                              call => $call });
}

# sends every request before reading any answer, so nginx has them all
# in flight at once; returns [status, body] per request, in order
sub concurrent_posts {
    my (@reqs) = @_;
    my @socks = map { post_start(@$_) } @reqs;
    return map { [ post_finish($_) ] } @socks;
}

# error.log lines written since mark_log() (called by preprocessors); by
# their time stamps, since a block may start nginx with a new log file
my $log_mark = '';

sub error_log_path {
    return ($ENV{TEST_NGINX_SERVROOT} // "$REPO/t/servroot") . '/logs/error.log';
}

sub mark_log {
    require POSIX;
    $log_mark = POSIX::strftime('%Y/%m/%d %H:%M:%S', localtime);
}

sub block_log {
    open my $fh, '<', error_log_path() or return '';
    return join '', grep { substr($_, 0, 19) ge $log_mark } <$fh>;
}

# PostgreSQL's own log (tools/pg-cluster), from the last pg_log_mark();
# with pg_logging_http_config() the module's connections log each parse
# and execute there, with the statement's name
my $pg_log_from = 0;

sub pg_logging_http_config {
    local $PG = "$PG options='-c log_min_duration_statement=0'";
    return pg_http_config();
}

sub pg_log_path { return "$ENV{TEST_NGINX_PG_DIR}/server.log" }

sub pg_log_mark { $pg_log_from = -s pg_log_path() // 0 }

sub pg_log {
    open my $fh, '<', pg_log_path() or return '';
    seek $fh, $pg_log_from, 0;
    local $/;
    return <$fh> // '';
}

# how many times the log says this since the mark
sub pg_logged { my ($re) = @_; return scalar(() = pg_log() =~ /$re/g) }

# polls a condition, never a fixed sleep: returns its last value
sub wait_for {
    my ($cond, $timeout) = @_;
    my $deadline = Time::HiRes::time() + ($timeout // 15);
    my $v;
    until (($v = $cond->()) || Time::HiRes::time() > $deadline) {
        Time::HiRes::sleep(0.05);
    }
    return $v;
}

# A real SMTP server (t/smtp-sink, aiosmtpd) storing what it receives;
# options as its command line takes them
my %sinks;

sub smtp_start {
    my (%opt) = @_;
    my $port = delete $opt{port} // $SMTP_PORT;
    smtp_stop($port);
    require File::Temp;
    my $dir = File::Temp::tempdir(CLEANUP => 1);
    my @args = ('--port', $port, '--dir', "$dir/mail",
                '--ready-file', "$dir/ready");
    mkdir "$dir/mail";
    # a 1 is a flag's, but for the options that count
    while (my ($k, $v) = each %opt) {
        my $counts = $k =~ /^(tempfail-data|delay-data|max-line)$/;
        push @args, "--$k", ($v eq '1' && !$counts ? () : $v);
    }
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>>', "$dir/sink.log";
        exec "$REPO/t/smtp-sink", @args or die "exec smtp-sink: $!";
    }
    wait_for(sub { -s "$dir/ready" }, 15) or die "smtp-sink did not start";
    $sinks{$port} = { pid => $pid, dir => "$dir/mail" };
    return "$dir/mail";
}

sub smtp_stop {
    my ($port) = @_;
    for my $p (defined $port ? ($port) : keys %sinks) {
        my $s = delete $sinks{$p} or next;
        kill 'TERM', $s->{pid};
        waitpid $s->{pid}, 0;
    }
}

END { local $?; smtp_stop() }    # keep the exit status

# the stored messages: [{ envelope json fields..., eml => path }], oldest first
sub smtp_messages {
    my ($dir) = @_;
    require JSON::PP;
    my @out;
    for my $json (sort glob "$dir/*.json") {
        open my $fh, '<', $json or next;
        local $/;
        my $env = JSON::PP::decode_json(<$fh>);
        ($env->{eml} = $json) =~ s/\.json$/.eml/;
        push @out, $env;
    }
    return \@out;
}

# what a mail client sees of stored messages (t/mime-check)
sub parse_mail {
    my (@files) = @_;
    require JSON::PP;
    my $out = `$REPO/t/mime-check @files`;
    $? == 0 or die "mime-check failed";
    return @{ JSON::PP::decode_json($out) };
}

sub smtp_http_config {
    my (%opt) = @_;
    my $port = $opt{port} // $SMTP_PORT;
    my $timeout = $opt{timeout} // '5s';
    return pg_http_config() . <<"_EOC_";
retell_smtp_server 127.0.0.1:$port;
retell_smtp_from retell\@parkview.test;
retell_smtp_timeout $timeout;
retell_smtp_backoff 500ms;
_EOC_
}

# the two endpoints the tests post to, with extra directives for each
sub webhook_locations {
    my (%extra) = @_;
    return join '', map { <<"_EOC_" } qw(in out);
location = /$_ {
    retell_webhook ${_}bound;
    retell_webhook_secret $SECRET;
    @{[ $extra{$_} // '' ]}
}
_EOC_
}

# What the database tests do before each block: an empty database with
# its companies, a log mark, the block's signed deliveries, and a default
# http_config (plus "--- extra_http_config") and config (the endpoints,
# with "--- extra_config" in both) unless the block has its own.
sub db_block_preprocessor {
    my (%o) = @_;
    return sub {
        my $block = shift;
        reset_db();
        mark_log();
        deliveries_to_requests($block);
        $o{each}->($block) if $o{each};
        $block->set_value(http_config => ($o{http_config} // \&pg_http_config)->()
                                         . ($block->extra_http_config // ''))
            unless defined $block->http_config;
        my $extra = $block->extra_config // '';
        $block->set_value(config => ($o{config} // sub {
                webhook_locations(in => $_[0], out => $_[0]) })->($extra))
            unless defined $block->config;
    };
}

# another session holding row locks until ->rollback
# the series of a retell_metrics location, name{labels} => value; {} when
# it does not answer (port: the server's unless given)
sub metrics_scrape {
    my ($port) = @_;
    require IO::Socket::INET;
    $port //= $ENV{TEST_NGINX_SERVER_PORT} // $ENV{TEST_NGINX_PORT} // 1984;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                     Timeout => 10) or return {};
    print $sock "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
    local $/;
    my ($body) = (<$sock> // '') =~ /\r\n\r\n(.*)\z/s;
    return { map { /^(\S+) (\S+)$/ ? ($1 => $2) : () }
             grep { !/^#/ } split /\n/, $body // '' };
}

sub lock_rows {
    my ($sql) = @_;
    my $locker = DBI->connect('dbi:Pg:' . dbh()->{Name}, 'postgres', '',
                              { AutoCommit => 0, RaiseError => 1,
                                PrintError => 0 });
    $locker->do($sql);
    return $locker;
}

# A block's "--- deliveries eval", [[path, body, %sign_options], ...],
# becomes its signed requests
sub deliveries_to_requests {
    my ($block) = @_;
    my $d = $block->deliveries or return;
    $block->set_value(request => [ map { "POST $_->[0]\n$_->[1]" } @$d ]);
    $block->set_value(more_headers =>
        [ map { my ($p, $b, %o) = @$_; signed_headers($b, %o) } @$d ]);
}

# For add_response_body_check: once a block's last request is answered,
# checks its "--- db_rows" (data) and runs its "--- db_check" Perl code,
# with $::body the last answer.
sub db_check_hook {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    my $rows = $block->db_rows;
    my $code = $block->db_check;
    return unless defined $rows || defined $code;
    my $n = ref $block->request ? scalar @{ $block->request } : 1;
    return if $dry_run || $req_idx != $n - 1;
    check_db_rows($block->name, $rows) if defined $rows;
    return unless defined $code;
    local $::body = $body;
    local $::name = $block->name;
    eval "package main; no strict; $code; 1"
        or Test::More::fail($block->name . " - db_check died: $@");
}

# A block's "--- db_rows": what the database holds once its deliveries are
# answered, as queries and the rows each must return, one assertion per
# query.  Queries are separated by blank lines; a query's text runs to its
# line ending in ";", its rows follow, one a line, columns joined by " | ",
# NULL as "NULL" (no line: no row).  A "# " line before a query names it.
#
#   --- db_rows
#   # closed, no email
#   SELECT status FROM retell.tickets;
#   closed
#
#   SELECT call_id, status FROM retell.tickets ORDER BY call_id;
#   c1 | contacted
#   n1 | new
sub check_db_rows {
    my ($name, $text) = @_;
    for my $group (split /\n\s*\n/, $text) {
        my @lines = grep { /\S/ } split /\n/, $group;
        next unless @lines;
        my $label = $lines[0] =~ s/^#\s*// ? shift @lines : undef;
        my @sql;
        while (@lines) {
            my $l = shift @lines;
            push @sql, $l;
            last if $l =~ /;\s*$/;
        }
        my $sql = join "\n", @sql;
        $sql =~ s/;\s*$//;
        my $got = dbh()->selectall_arrayref($sql);
        my $want = join "\n", map { s/\s+$//r } @lines;
        Test::More::is(join("\n", map { join ' | ', map { $_ // 'NULL' } @$_ } @$got), $want,
                       "$name - db_rows: " . ($label // $sql =~ s/\s+/ /gr));
    }
}

# a plain GET, timed
sub get {
    my ($path) = @_;
    require IO::Socket::INET;
    my $t0 = Time::HiRes::time();
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $ENV{TEST_NGINX_SERVER_PORT} // $ENV{TEST_NGINX_PORT}
                    // 1984, Timeout => 10) or die "connect to nginx: $!";
    print $sock "GET $path HTTP/1.0\r\nHost: localhost\r\n\r\n";
    my ($status, $body) = post_finish($sock);
    return ($status, $body, Time::HiRes::time() - $t0);
}

# POST a signed body to the test nginx from Perl, for steps between or
# around Test::Nginx requests; returns (status, body, elapsed seconds)
sub post {
    my ($path, $body, %opt) = @_;
    my $t0 = Time::HiRes::time();
    my $sock = post_start($path, $body, %opt);
    my ($status, $resp, $head) = post_finish($sock);
    return ($status, $resp, Time::HiRes::time() - $t0, $head);
}

sub post_start {
    my ($path, $body, %opt) = @_;
    require IO::Socket::INET;
    my $port = $opt{port} // $ENV{TEST_NGINX_SERVER_PORT}
               // $ENV{TEST_NGINX_PORT} // 1984;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port, Timeout => 10)
        or die "connect to nginx: $!";
    my $sig = exists $opt{signature} ? $opt{signature} : sign($body, %opt);
    print $sock "POST $path HTTP/1.0\r\nHost: localhost\r\n"
        . "Content-Type: application/json\r\n"
        . (defined $sig ? "X-Retell-Signature: $sig\r\n" : '')
        . "Content-Length: " . length($body) . "\r\n\r\n" . $body;
    return $sock;
}

sub post_finish {
    my ($sock) = @_;
    local $/;
    my $resp = <$sock> // '';
    close $sock;
    my ($status) = $resp =~ m{^HTTP/1\.\d (\d+)};
    my ($head, $content) = $resp =~ /\A(.*?)\r\n\r\n(.*)\z/s;
    return ($status // 0, $content // '', $head // '');
}

# stop and start the test cluster, for outage tests
sub pg_stop {
    system("$REPO/tools/pg-cluster", 'stop', $ENV{TEST_NGINX_PG_DIR}) == 0
        or die "pg-cluster stop failed";
    delete $dbh{$PG};
}

sub pg_start {
    my ($port) = $PG =~ /port=(\d+)/;
    my ($db) = $PG =~ /dbname=(\S+)/;
    system("$REPO/tools/pg-cluster", 'start', $ENV{TEST_NGINX_PG_DIR}, $port,
           $db) == 0 or die "pg-cluster start failed";
}

# a sample body from t/samples, without the file's trailing line end
sub sample {
    my ($name) = @_;
    open my $fh, '<:raw', "$REPO/t/samples/$name.json"
        or die "sample $name: $!";
    local $/;
    my $body = <$fh>;
    $body =~ s/\n\z//;
    return $body;
}

# the X-Retell-Signature value; options: secret, ts (ms), offset (ms)
sub sign {
    my ($body, %opt) = @_;
    my $ts = $opt{ts} // (now_ms() + ($opt{offset} // 0));
    my $secret = $opt{secret} // $SECRET;
    return "v=$ts,d=" . hmac_sha256_hex($body . $ts, $secret);
}

sub signed_headers {
    my ($body, %opt) = @_;
    return "Content-Type: application/json\nX-Retell-Signature: "
           . sign($body, %opt);
}

# Outbox rows as if $n deliveries had queued them, in one transaction
# (calls bulk-1 .. bulk-$n of company 1); recipients as an array literal,
# due as a timestamp ("infinity": not due until the test says so)
sub queue_rows {
    my ($n, %o) = @_;
    my $db = dbh();
    $db->begin_work;
    $db->do(q{INSERT INTO retell.calls (call_id, company_id, direction, call_summary)
              SELECT 'bulk-' || g, 1, 'inbound', 'Bulk call ' || g FROM generate_series(1, ?) g}, undef, $n);
    $db->do(q{INSERT INTO retell.tickets (company_id, call_id, status)
              SELECT 1, call_id, 'new' FROM retell.calls WHERE call_id LIKE 'bulk-%'});
    $db->do(q{INSERT INTO retell.email_outbox (company_id, ticket_id, call_id, reason, recipients,
                                              next_attempt_at)
              SELECT 1, id, call_id, 'action_required', ?, ?::timestamptz
                FROM retell.tickets WHERE call_id LIKE 'bulk-%'}, undef,
            $o{recipients} // '{ops@parkview.test}', $o{due} // 'now');
    $db->commit;
}

# Another nginx (master and workers) beside the Test::Nginx one, with the
# module and the http block's directives given: nginx_start(port => P,
# http => '...', workers => 2, main => '...') returns a handle for
# nginx_signal/_stop
my $nginx_bin = $ENV{TEST_NGINX_BINARY} // '/usr/sbin/nginx';

sub nginx_start {
    my (%o) = @_;
    require File::Temp;
    my $dir = File::Temp::tempdir(CLEANUP => 1);
    mkdir "$dir/logs";
    open my $fh, '>', "$dir/nginx.conf" or die $!;
    print $fh "load_module $ENV{TEST_NGINX_LOAD_MODULES};\n"
        . "worker_processes @{[ $o{workers} // 2 ]};\n"
        . "error_log $dir/logs/error.log info;\n"
        . "pid $dir/logs/nginx.pid;\n" . ($o{main} // '') . "events {}\n"
        . "http {\n$o{http}"
        . "access_log off;\nclient_body_temp_path $dir;\n"
        . "server { listen 127.0.0.1:$o{port}; return 204; }\n}\n";
    close $fh;
    system($nginx_bin, '-p', $dir, '-c', "$dir/nginx.conf") == 0
        or die "nginx did not start";
    wait_for(sub { -s "$dir/logs/nginx.pid" }) or die "no pid file";
    return { dir => $dir, error_log => "$dir/logs/error.log" };
}

sub nginx_signal {
    my ($n, $sig) = @_;
    system($nginx_bin, '-p', $n->{dir}, '-c', "$n->{dir}/nginx.conf",
           '-s', $sig) == 0 or die "nginx -s $sig failed";
}

sub nginx_stop {
    my ($n) = @_;
    open my $fh, '<', "$n->{dir}/logs/nginx.pid" or return;
    my $pid = <$fh> // return;
    chomp $pid;
    nginx_signal($n, 'quit');
    wait_for(sub { !running($pid) }, 30);
}

# kill(0) succeeds on zombies, and a daemon's master becomes one here
# (this container's init does not reap orphans): look at /proc
sub running {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    return (<$fh> // '') !~ /^\d+ \(.*\) [ZX] /s;
}

1;
