# Email delivery (SPEC section 7) through a real SMTP server (t/smtp-sink,
# aiosmtpd), with messages parsed back by Python's email package.  Its
# TESTs 12 and 13, other nginx instances started and reloaded, are
# programs: t/061-smtp-instances.t.
use lib 't/inc';
use Test::Nginx::Socket 'no_plan';
use Retell;
use JSON::PP ();
use Time::HiRes qw(time sleep);

our $tmp = "$REPO/build/smtp-test";
system('mkdir', '-p', $tmp);

sub R { Retell::sample(@_) }
sub B { Retell::event_body(@_) }
sub C { Retell::with_call_id(@_) }

# a test certificate for localhost, made once per run
our ($cert, $key) = ("$tmp/localhost.crt", "$tmp/localhost.key");
system("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost"
       . " -addext subjectAltName=DNS:localhost -keyout $key -out $cert"
       . " 2>/dev/null") == 0 or die "openssl req failed";
open my $fh, '>', "$tmp/smtp.password" or die $!;
print $fh "s3cret-pass\n";
close $fh;

our $mail;      # the current sink's folder

sub slurp { open my $fh, '<', $_[0] or return ''; local $/; return <$fh> }

my $preprocess = db_block_preprocessor(
    http_config => \&smtp_http_config,
    config => sub { webhook_locations(out => 'retell_company 2;') },
    each => sub {
        # "--- smtp_sink eval": the sink's options, or 'none' for no server
        my $sink = $_[0]->smtp_sink // {};
        smtp_stop();
        $mail = ref $sink ? smtp_start(%$sink) : undef;
    });
add_block_preprocessor(sub { $preprocess->(@_) });

add_response_body_check(\&db_check_hook);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: one well-formed email per qualifying call, sent right after the delivery
--- extra_http_config
retell_ticket_url https://app.example/tickets/;
--- deliveries eval
[ [ '/in', ::R('inbound-call_started') ],
  [ '/in', ::R('inbound-call_ended') ],
  [ '/in', ::R('inbound-call_analyzed-action_required') ],
  [ '/in', ::R('inbound-call_analyzed-action_required') ] ]
--- error_code eval
[200, 200, 200, 200]
--- db_check
my $msgs = wait_for(sub { my $m = smtp_messages($::mail); @$m ? $m : undef });
ok($msgs, "$name: an email arrived");
# a second qualifying call, as a marker: once it is in, the first call's
# email had every chance to go out twice
post('/in', ::C(::R('inbound-call_analyzed-action_required'), 'marker'));
$msgs = wait_for(sub { my $m = smtp_messages($::mail); @$m >= 2 ? $m : undef });
is(scalar @$msgs, 2, "$name: one email per call");
my $e = $msgs->[0];
is($e->{mail_from}, 'retell@parkview.test', "$name: envelope sender");
is_deeply($e->{rcpt_tos}, ['ops@parkview.test', 'leasing@parkview.test'], "$name: envelope recipients");
my ($m) = parse_mail($e->{eml});
is_deeply($m->{defects}, [], "$name: no MIME defects");
ok(!$m->{bare_lf} && !$m->{bare_cr}, "$name: CRLF line ends only");
cmp_ok($m->{max_line}, '<=', 78, "$name: lines within limits");
is($m->{subject}, '[Action required] Call from Dana Whitfield (415) 555-0134', "$name: subject");
is($m->{from}, 'retell@parkview.test', "$name: From");
like($m->{to}, qr/ops\@parkview\.test.*leasing\@parkview\.test/, "$name: To");
like($m->{message_id}, qr/^<retell-outbox-1\.call_5c1f2b7e8a9d4e0fb3c6a1d2e4f50617\@parkview\.test>$/, "$name: stable Message-ID");
ok($m->{date}, "$name: Date");
is($m->{content_type}, 'text/plain', "$name: text/plain");
is($m->{charset}, 'utf-8', "$name: UTF-8");
my $b = $m->{body};
like($b, qr/Action required/i, "$name: why");
like($b, qr/Dana Whitfield/, "$name: customer name");
like($b, qr/\(415\) 555-0134/, "$name: display phone");
like($b, qr/slow leak under the kitchen sink/, "$name: summary");
like($b, qr/Neutral/, "$name: analysis");
like($b, qr/^urgency: same day$/m, "$name: business data as key: value");
like($b, qr/^issue_category: maintenance$/m, "$name: business data");
like($b, qr/User: Yes, slowly\. I put a bucket under it\./, "$name: transcript");
like($b, qr{https://dxc03zgurdly9\.cloudfront\.net/call_5c1f2b7e8a9d4e0fb3c6a1d2e4f50617/recording\.wav}, "$name: recording");
like($b, qr{https://app\.example/tickets/1\b}, "$name: ticket link");
my $o = db_row(q{SELECT * FROM retell.email_outbox WHERE call_id = 'call_5c1f2b7e8a9d4e0fb3c6a1d2e4f50617'});
is($o->{status}, 'sent', "$name: row sent");
is($o->{attempts}, 1, "$name: one attempt");
ok($o->{sent_at}, "$name: sent_at");
is($o->{subject}, $m->{subject}, "$name: subject kept in the row");
like($o->{body}, qr/slow leak/, "$name: body kept in the row");
--- no_error_log
[error]



=== TEST 2: no email when notifications are off or no recipient is valid
--- deliveries eval
[ [ '/out', ::C(::R('outbound-call_analyzed-interested'), 'quiet', agent_id => '"agent_quiet"') ],
  [ '/in', ::C(::R('inbound-call_analyzed-action_required'), 'nobody', agent_id => '"agent_nobody"') ],
  [ '/in', ::C(::R('inbound-call_analyzed-action_required'), 'marker') ] ]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[ qr/"email":"disabled"/, qr/"email":"no_recipients"/, qr/"email":"queued"/ ]
--- db_check
my $msgs = wait_for(sub { my $m = smtp_messages($::mail); @$m ? $m : undef });
is(scalar @$msgs, 1, "$name: only the marker's email");
my ($m) = parse_mail($msgs->[0]{eml});
like($m->{body}, qr/marker/, "$name: it is the marker");
is(db_value('SELECT count(*) FROM retell.email_outbox'), 1, "$name: one row");



=== TEST 3: STARTTLS with a verified certificate and AUTH
--- smtp_sink eval
{ 'tls-cert' => $::cert, 'tls-key' => $::key, 'require-tls' => 1, auth => 'mailer:s3cret-pass' }
--- http_config eval
Retell::pg_http_config() . qq{
retell_smtp_server localhost:$Retell::SMTP_PORT;
retell_smtp_from retell\@parkview.test;
retell_smtp_starttls required;
retell_smtp_trusted_certificate $::cert;
retell_smtp_auth mailer $::tmp/smtp.password;
retell_smtp_timeout 5s;
}
--- deliveries eval
[ [ '/in', ::R('inbound-call_analyzed-action_required') ] ]
--- error_code: 200
--- db_check
my $msgs = wait_for(sub { my $m = smtp_messages($::mail); @$m ? $m : undef });
ok($msgs, "$name: delivered");
ok($msgs->[0]{tls}, "$name: over TLS");
is($msgs->[0]{auth_user}, 'mailer', "$name: authenticated");
is(db_value('SELECT status FROM retell.email_outbox'), 'sent', "$name: sent");



=== TEST 4: AUTH in clear only when the operator opts in with "insecure"; a wrong password is temporary, not the message's fault
--- smtp_sink eval
{ auth => 'mailer:other-pass' }
--- http_config eval
Retell::smtp_http_config() . qq{
retell_smtp_starttls off;
retell_smtp_auth mailer $::tmp/smtp.password insecure;
}
--- deliveries eval
[ [ '/in', ::R('inbound-call_analyzed-action_required') ] ]
--- error_code: 200
--- db_check
my $o = wait_for(sub { db_row(q{SELECT * FROM retell.email_outbox WHERE attempts >= 1 AND status = 'pending'}) });
ok($o, "$name: kept for a retry");
like($o->{last_error}, qr/^535/, "$name: the server's answer kept");
is(scalar @{ smtp_messages($::mail) }, 0, "$name: nothing delivered");
like(block_log(), qr/failed at AUTH: a configuration or server problem/, "$name: logged as a configuration problem");



=== TEST 5: "retell_smtp_starttls required" never sends in clear
--- http_config eval
Retell::smtp_http_config() . "retell_smtp_starttls required;\n"
--- deliveries eval
[ [ '/in', ::R('inbound-call_analyzed-action_required') ] ]
--- error_code: 200
--- db_check
my $o = wait_for(sub { db_row(q{SELECT * FROM retell.email_outbox WHERE attempts >= 2 AND status = 'pending'}) });
ok($o, "$name: tried again and again, still pending: a misconfigured server is temporary");
like($o->{last_error}, qr/does not offer STARTTLS/, "$name: says why");
is(scalar @{ smtp_messages($::mail) }, 0, "$name: nothing sent in clear");



=== TEST 6: server down: rows stay pending, then go out once it is back, no reload
--- smtp_sink eval
'none'
--- deliveries eval
[ [ '/in', ::R('inbound-call_analyzed-action_required') ],
  [ '/out', ::C(::R('outbound-call_ended-transfer'), 'x2', agent_id => '"agent_2f3e4d5c6b7a8091a2b3c4d5"') ] ]
--- error_code eval
[200, 200]
--- db_check
ok(wait_for(sub { db_value(q{SELECT count(*) FROM retell.email_outbox WHERE attempts >= 2 AND status = 'pending'}) == 2 }),
   "$name: retried while the server is down, still pending");
like(db_value('SELECT last_error FROM retell.email_outbox LIMIT 1'), qr/cannot connect/, "$name: the error kept");
my $dir = smtp_start();
my $msgs = wait_for(sub { my $m = smtp_messages($dir); @$m >= 2 ? $m : undef }, 20);
is(scalar @{ $msgs || [] }, 2, "$name: both delivered once the server is back");
ok(wait_for(sub { db_value(q{SELECT count(*) FROM retell.email_outbox WHERE status = 'sent'}) == 2 }), "$name: rows sent");



=== TEST 7: a temporary failure is retried with backoff; a permanent one fails the row
--- smtp_sink eval
{ 'tempfail-data' => 2, 'reject-data' => 'call_7a6b5c4d' }
--- deliveries eval
[ [ '/in', ::R('inbound-call_analyzed-action_required') ] ]
--- error_code: 200
--- db_check
my $o = wait_for(sub { db_row(q{SELECT * FROM retell.email_outbox WHERE status = 'sent'}) }, 20);
ok($o, "$name: sent in the end");
is($o->{attempts}, 3, "$name: after two 451s");
my ($s) = post('/out', ::C(::R('outbound-call_analyzed-interested'), 'call_7a6b5c4d-perm', agent_id => '"agent_2f3e4d5c6b7a8091a2b3c4d5"'));
my $f = wait_for(sub { db_row(q{SELECT * FROM retell.email_outbox WHERE status = 'failed'}) });
ok($f, "$name: 554 fails the row");
is($f->{attempts}, 1, "$name: at once, no retry");
like($f->{last_error}, qr/^554/, "$name: the server's reply kept");



=== TEST 8: the retry limit
--- smtp_sink eval
{ 'tempfail-data' => 100 }
--- extra_http_config
retell_smtp_max_attempts 3;
--- deliveries eval
[ [ '/in', ::R('inbound-call_analyzed-action_required') ] ]
--- error_code: 200
--- db_check
my $f = wait_for(sub { db_row(q{SELECT * FROM retell.email_outbox WHERE status = 'failed'}) }, 20);
ok($f, "$name: failed after the limit");
is($f->{attempts}, 3, "$name: three attempts");
like($f->{last_error}, qr/^451/, "$name: the last error");



=== TEST 9: a refused recipient does not block the others, and is recorded
--- smtp_sink eval
{ 'reject-rcpt' => '^leasing@' }
--- deliveries eval
[ [ '/in', ::R('inbound-call_analyzed-action_required') ] ]
--- error_code: 200
--- db_check
my $msgs = wait_for(sub { my $m = smtp_messages($::mail); @$m ? $m : undef });
is_deeply($msgs->[0]{rcpt_tos}, ['ops@parkview.test'], "$name: delivered to the other");
my $o = wait_for(sub { db_row(q{SELECT * FROM retell.email_outbox WHERE status = 'sent'}) });
like($o->{last_error}, qr/leasing\@parkview\.test: 550/, "$name: the refused one recorded");



=== TEST 10: header injection in the customer name and the summary
--- deliveries eval
[ [ '/in', ::B('call_analyzed', 'inject',
        collected_dynamic_variables => { customer_name => "Dana\r\nBcc: evil\@example.com" },
        call_analysis => { call_summary => "Leak.\r\nBcc: evil2\@example.com\r\n.\r\nMAIL FROM:<evil\@example.com>",
                           custom_analysis_data => { action_required => JSON::PP::true(), "x\r\nBcc" => "evil3\@example.com" } }) ] ]
--- error_code: 200
--- db_check
my $msgs = wait_for(sub { my $m = smtp_messages($::mail); @$m ? $m : undef });
is_deeply($msgs->[0]{rcpt_tos}, ['ops@parkview.test', 'leasing@parkview.test'], "$name: no smuggled recipient");
my ($m) = parse_mail($msgs->[0]{eml});
ok(!grep({ lc $_ eq 'bcc' } @{ $m->{header_names} }), "$name: no Bcc header");
unlike($m->{raw_header}, qr/^(?:Bcc|MAIL FROM)\b/mi, "$name: no header line made of webhook text")
    or diag $m->{raw_header};
is(scalar(() = $m->{raw_header} =~ /evil/g), 1, "$name: only the name, inside Subject");
like($m->{subject}, qr/Dana Bcc: evil\@example\.com/, "$name: the name stays inside the subject");
like($m->{body}, qr/MAIL FROM:<evil\@example\.com>/, "$name: the summary stays in the body");
is_deeply($m->{defects}, [], "$name: well-formed");
is(scalar @{ smtp_messages($::mail) }, 1, "$name: one message, the DATA was not cut short");



=== TEST 11: non-ASCII names and summaries
--- deliveries eval
[ [ '/in', ::B('call_analyzed', 'utf8', from_number => '+33 1 42 68 53 00',
        collected_dynamic_variables => { customer_name => "Zo\x{eb} M\x{fc}ller \x{2014} \x{6771}\x{4eac}" },
        call_analysis => { call_summary => "R\x{e9}sum\x{e9}: caf\x{e9} \x{2615} au 3\x{e8}me \x{e9}tage",
                           custom_analysis_data => { action_required => 'true', "ville" => "Z\x{fc}rich" } }) ] ]
--- error_code: 200
--- db_check
my $msgs = wait_for(sub { my $m = smtp_messages($::mail); @$m ? $m : undef });
my ($m) = parse_mail($msgs->[0]{eml});
is_deeply($m->{defects}, [], "$name: well-formed");
my $want_name = "Zo\x{eb} M\x{fc}ller \x{2014} \x{6771}\x{4eac}";
is($m->{subject}, "[Action required] Call from $want_name +33 142685300", "$name: subject decoded back");
like($m->{raw_header}, qr/^Subject: =\?UTF-8\?[BQ]\?/mi, "$name: RFC 2047 encoded");
like($m->{body}, qr/R\x{e9}sum\x{e9}: caf\x{e9} \x{2615} au 3\x{e8}me \x{e9}tage/, "$name: summary");
like($m->{body}, qr/^ville: Z\x{fc}rich$/m, "$name: business data");
is($m->{cte}, 'quoted-printable', "$name: a safe transfer encoding");



=== TEST 14: every step has a timer: a server that stalls is a temporary failure
--- smtp_sink eval
{ 'delay-data' => 5 }
--- http_config eval
Retell::smtp_http_config(timeout => '500ms')
--- deliveries eval
[ [ '/in', ::R('inbound-call_analyzed-action_required') ] ]
--- error_code: 200
--- db_check
my $o = wait_for(sub { db_row(q{SELECT * FROM retell.email_outbox WHERE status = 'pending' AND attempts >= 1 AND last_error IS NOT NULL}) });
ok($o, "$name: back to pending for a retry");
like($o->{last_error}, qr/timed out waiting for a reply/, "$name: says why");
like(block_log(), qr/\[warn\] .*retell outbox 1 \(call "call_5c1f2b7e8a9d4e0fb3c6a1d2e4f50617"\): not sent, will retry/, "$name: logged with the call id");



=== TEST 15: a failed transfer and a dropped call each send one email that says why (issue 18)
--- deliveries eval
[ [ '/in', ::B('call_ended', 'call_xfail', disconnection_reason => 'transfer_cancelled', call_status => 'ended') ],
  [ '/in', ::B('call_ended', 'call_dropped', disconnection_reason => 'error_llm_websocket_lost_connection', call_status => 'ended') ] ]
--- error_code eval
[200, 200]
--- db_check
my $msgs = wait_for(sub { my $m = smtp_messages($::mail); @$m >= 2 ? $m : undef });
is(scalar @{ $msgs // [] }, 2, "$name: two emails");
my %by = map { my ($m) = parse_mail($_->{eml}); ($m->{subject} =~ /^\[([^\]]+)\]/)[0] => $m } @{ $msgs // [] };
ok($by{'Transfer failed'}, "$name: [Transfer failed] subject");
like($by{'Transfer failed'}{body} // '', qr/The caller asked for a person and the transfer did not connect: call them back\./,
     "$name: the transfer email says why");
ok($by{'Call dropped'}, "$name: [Call dropped] subject");
like($by{'Call dropped'}{body} // '', qr/The call was dropped by the phone platform/, "$name: the dropped-call email says why");
is_deeply(db_rows(q{SELECT call_id, reason, status FROM retell.email_outbox ORDER BY call_id}),
          [ { call_id => 'call_dropped', reason => 'call_failed', status => 'sent' },
            { call_id => 'call_xfail', reason => 'transfer_failed', status => 'sent' } ],
          "$name: both rows sent");



=== TEST 16: the email says when its recording link may already be dead: storage opted out and the call over 10 minutes ago, or a call over 24 hours ago (issue 18)
--- deliveries eval
my $now = Retell::now_ms();
my %a = (call_analysis => { custom_analysis_data => { action_required => JSON::PP::true() } },
         recording_url => 'https://recordings.example/rec-1.wav');
[ [ '/in', ::B('call_analyzed', 'call_optout', %a, data_storage_setting => 'basic_attributes_only',
               start_timestamp => $now - 1_500_000, end_timestamp => $now - 1_200_000) ],
  [ '/in', ::B('call_analyzed', 'call_old', %a, data_storage_setting => 'everything',
               start_timestamp => $now - 2 * 86_400_000, end_timestamp => $now - 2 * 86_400_000 + 60_000) ],
  [ '/in', ::B('call_analyzed', 'call_fresh', %a, data_storage_setting => 'basic_attributes_only',
               start_timestamp => $now - 120_000, end_timestamp => $now - 60_000) ] ]
--- error_code eval
[200, 200, 200]
--- db_check
my $msgs = wait_for(sub { my $m = smtp_messages($::mail); @$m >= 3 ? $m : undef });
is(scalar @{ $msgs // [] }, 3, "$name: three emails");
my %by = map { my ($m) = parse_mail($_->{eml}); ($m->{body} =~ /Call ID: (\S+)/)[0] => $m->{body} } @{ $msgs // [] };
like($by{call_optout} // '', qr/rec-1\.wav\nRetell keeps no recording of this call/, "$name: opted out, 20 minutes on: said");
like($by{call_old} // '', qr/rec-1\.wav\nThe link may have expired/, "$name: two days on: said");
unlike($by{call_fresh} // '', qr/keeps no recording|may have expired/, "$name: a minute on: nothing to say");
is(db_value(q{SELECT data_storage_setting FROM retell.calls WHERE call_id = 'call_optout'}), 'basic_attributes_only',
   "$name: the storage setting stored with the call");



=== TEST 17: every state says itself under "error_log debug": a delivery's PostgreSQL connection, the email's outbox job and SMTP session, in order (issue 19)
--- deliveries eval
[ [ '/in', ::R('inbound-call_analyzed-action_required') ] ]
--- error_code: 200
--- db_check
ok(wait_for(sub { (db_value(q{SELECT status FROM retell.email_outbox}) // '') eq 'sent' }, 10), "$name: the email sent");
ok(wait_for(sub { Retell::block_log() =~ /retell outbox: waiting for the next outbox sweep, row 1/ }, 5), "$name: the job ended");
my $log = Retell::block_log();
sub in_order {
    my ($what, @re) = @_;
    my $pos = 0;
    for my $re (@re) {
        pos($log) = $pos;
        unless ($log =~ /$re/g) { Test::More::fail("$::name: $what: no '$re' after the ones before"); return }
        $pos = pos($log);
    }
    Test::More::pass("$::name: $what, in order");
}
in_order('the delivery\'s connection',
         qr/retell postgres: connecting to PostgreSQL, "127\.0\.0\.1:\d+"/,
         qr/retell postgres: keeping an idle PostgreSQL connection/,
         qr/retell postgres: sending a command to PostgreSQL/,
         qr/retell postgres: reading PostgreSQL's answer/,
         qr/retell postgres: keeping an idle PostgreSQL connection/);
in_order('the outbox job',
         qr/retell outbox: claiming an outbox row, row -/,
         qr/retell outbox: sending an outbox email, row 1\b/,
         qr/retell outbox: recording an outbox email's outcome, row 1\b/,
         qr/retell outbox: waiting for the next outbox sweep, row 1\b/);
in_order('the SMTP session',
         qr/retell smtp: waiting for the SMTP server's greeting \(127\.0\.0\.1:\d+\)/,
         qr/retell smtp: sending EHLO to the SMTP server/,
         qr/retell smtp: sending MAIL FROM/,
         qr/retell smtp: sending RCPT TO/,
         qr/retell smtp: sending DATA/,
         qr/retell smtp: sending the message/,
         qr/retell smtp: sending QUIT/);
