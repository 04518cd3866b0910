# Email from more than one nginx (SPEC section 7, t/060-smtp.t's TESTs 12
# and 13 until issue 19): two instances on one database send each queued
# row exactly once; a reload during delivery loses nothing and sends
# nothing twice.  Messages are counted at a real SMTP server
# (t/smtp-sink).
#
# A plain Test::More program: the instances that send are started,
# reloaded and stopped by the tests themselves (Retell::nginx_start); the
# test's own nginx (t/inc/NginxRun.pm) only has the database, no email.
use strict;
use warnings;
use lib 't/inc';
use Test::More;
use Retell;
use NginxRun;

our $mail;      # the current sink's folder

sub slurp { open my $fh, '<', $_[0] or return ''; local $/; return <$fh> }

# one test: a new SMTP server with the sink's options
sub instances_block {
    my ($name, %o) = @_;
    my $sink = delete $o{sink};
    block($name, workers => 1,
          http => Retell::pg_http_config(),
          config => "location = /fast { return 200 \"fast\\n\"; }\n",
          each => sub { smtp_stop(); $mail = smtp_start(%$sink) },
          %o);
}

instances_block('TEST 1: two nginx instances on one database send 200 queued rows, each exactly once',
    sink => {},
    test => sub {
        my ($name) = @_;
        # both running before the rows appear, so both race for them
        my @n = map { Retell::nginx_start(port => $Retell::SMTP_PORT + 10 + $_, http => Retell::smtp_http_config()) } 1 .. 2;
        Retell::queue_rows(200);
        my $msgs = wait_for(sub { my $m = smtp_messages($::mail); @$m >= 200 ? $m : undef }, 60);
        is(scalar @{ $msgs || [] }, 200, "$name: 200 messages");
        Retell::nginx_stop($_) for @n;
        my %ids;
        for my $e (@{ smtp_messages($::mail) }) {
            open my $fh, '<', $e->{eml} or next;
            local $/;
            my ($id) = <$fh> =~ /^Message-ID: <retell-outbox-(\d+)\./mi;
            $ids{$id}++;
        }
        is(scalar keys %ids, 200, "$name: every row delivered");
        is(scalar(grep { $_ != 1 } values %ids), 0, "$name: none twice");
        is(db_value(q{SELECT count(*) FROM retell.email_outbox WHERE status = 'sent' AND attempts = 1}), 200, "$name: every row sent, at the first attempt");
        my @sent = map { scalar(() = ::slurp("$_->{dir}/logs/error.log") =~ /retell outbox \d+ .*: sent to/g) } @n;
        ok($sent[0] > 0 && $sent[1] > 0, "$name: both instances took part (@sent)");
    });


instances_block('TEST 2: a reload during delivery loses nothing and sends nothing twice',
    sink => { 'delay-data' => '0.1' },
    test => sub {
        my ($name) = @_;
        Retell::queue_rows(30);
        my $n = Retell::nginx_start(port => $Retell::SMTP_PORT + 20, http => Retell::smtp_http_config());
        ok(wait_for(sub { @{ smtp_messages($::mail) } >= 3 }), "$name: delivery under way");
        Retell::nginx_signal($n, 'reload');
        my $msgs = wait_for(sub { my $m = smtp_messages($::mail); @$m >= 30 ? $m : undef }, 60);
        is(scalar @{ $msgs || [] }, 30, "$name: all 30 delivered");
        ok(wait_for(sub { db_value(q{SELECT count(*) FROM retell.email_outbox WHERE status = 'sent'}) == 30 }), "$name: all recorded sent")
            or diag Test::More::explain(db_rows(q{SELECT id, status, attempts, last_error FROM retell.email_outbox WHERE status <> 'sent'}));
        is(db_value(q{SELECT count(*) FROM retell.email_outbox WHERE attempts > 1}), 0, "$name: none sent twice");
        Retell::nginx_stop($n);
        like(::slurp("$n->{dir}/logs/error.log"), qr/reconfiguring/, "$name: the reload happened");
    });

done_testing();
