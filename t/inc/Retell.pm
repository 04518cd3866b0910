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

our @EXPORT = qw(sample sign signed_headers now_ms $SECRET $REPO);

our $REPO = abs_path(dirname(__FILE__) . '/../..');
our $SECRET = 'test-secret-0f8e2c';

sub now_ms { int(Time::HiRes::time() * 1000) }

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

1;
