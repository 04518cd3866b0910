# The outbox's own statements when their transaction fails at COMMIT
# (issue 17): the error comes after the statement's rows, and the claim or
# the record must read it as a failure.  A deferred constraint trigger on
# retell.email_outbox raises at commit the first time a row is claimed
# ("sending") or recorded ("sent"): a sequence counts the attempts, since
# it is not rolled back with the transaction.  Messages are counted at a
# real SMTP server (t/smtp-sink).
#
# A plain Test::More program: each test arms a trigger, queues a row and
# waits for the outbox, with no request of its own; its nginx is
# t/inc/NginxRun.pm's.
use strict;
use warnings;
use lib 't/inc';
use Test::More;
use Retell;
use NginxRun;

our $mail;

sub fail_at_commit_once {
    my ($status) = @_;
    my $db = dbh();
    $db->do(q{DROP SEQUENCE IF EXISTS public.retell_test_commit_failures});
    $db->do(q{CREATE SEQUENCE public.retell_test_commit_failures});
    $db->do(qq{CREATE OR REPLACE FUNCTION public.retell_test_outbox_fail() RETURNS trigger LANGUAGE plpgsql AS \$\$
               BEGIN
                   IF NEW.status = '$status' AND nextval('public.retell_test_commit_failures') = 1 THEN
                       RAISE EXCEPTION 'deferred check failed for outbox row %', NEW.id USING ERRCODE = '23514';
                   END IF;
                   RETURN NULL;
               END \$\$});
    $db->do(q{DROP TRIGGER IF EXISTS retell_test_outbox_fail ON retell.email_outbox});
    $db->do(q{CREATE CONSTRAINT TRIGGER retell_test_outbox_fail AFTER UPDATE ON retell.email_outbox
              DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.retell_test_outbox_fail()});
}

sub no_fail_at_commit {
    dbh()->do(q{DROP TRIGGER IF EXISTS retell_test_outbox_fail ON retell.email_outbox});
}

sub row { return db_row(q{SELECT status, attempts FROM retell.email_outbox ORDER BY id LIMIT 1}) }

# one test: a new SMTP server, no trigger yet, and an nginx that sends
# email with only /fast to serve
sub outbox_block {
    my ($name, %o) = @_;
    block($name,
          http => smtp_http_config(timeout => '5s'),
          config => "location = /fast { return 200 \"fast\\n\"; }\n",
          each => sub { no_fail_at_commit(); smtp_stop(); $mail = smtp_start() },
          %o);
}

# Before the fix the claim's rows were used, the message sent without a
# lease, and the row, still pending, claimed and sent again.
outbox_block('TEST 1: a claim whose commit fails is a failed claim: nothing is sent under it, the row is claimed again and sent once',
    test => sub {
        my ($name) = @_;
        fail_at_commit_once('sending');
        Retell::queue_rows(1);
        ok(wait_for(sub { (row()->{status} // '') eq 'sent' }, 10), "$name: the row is sent in the end");
        is(row()->{attempts}, 1, "$name: one attempt recorded (the failed claim left nothing)");
        like(block_log(), qr/retell outbox: claim failed: .*deferred check failed for outbox row 1/, "$name: the failed claim in the log");
        # a message sent under the failed claim would be in before the row says sent
        is(scalar @{ smtp_messages($::mail) }, 1, "$name: one message at the server");
        unlike(block_log(), qr/lease lost/, "$name: no session ran without its lease");
        no_fail_at_commit();
    });


# Before the fix the record's row was taken as recorded, the row stayed
# "sending", and it was sent again when its lease ran out.
outbox_block('TEST 2: a record whose commit fails is retried: the row says sent at once, it is never sent again when the lease ends',
    test => sub {
        my ($name) = @_;
        fail_at_commit_once('sent');
        Retell::queue_rows(1);
        ok(wait_for(sub { (row()->{status} // '') eq 'sent' }, 5), "$name: the row says sent within the record's retry, long before the lease ends");
        is(row()->{attempts}, 1, "$name: after one attempt");
        like(block_log(), qr/cannot record the outcome: .*deferred check failed for outbox row 1/, "$name: the failed record in the log");
        is(scalar @{ smtp_messages($::mail) }, 1, "$name: one message at the server");
        no_fail_at_commit();
    });

done_testing();
