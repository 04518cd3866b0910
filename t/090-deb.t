# The Debian package (issue 20, item 3): "make deb" builds it the way
# Debian builds its libnginx-mod-* packages; its contents, its nginx-abi
# dependency, lintian without errors.  Then, as root: installed, the module
# is enabled and "nginx -t" passes on a configuration that uses it, the
# migrations apply from the installed path; removed, it is disabled;
# purged, nothing is left.  The system is left as the test found it.
use strict;
use warnings;
use lib 't/inc';
use Test::More;
use File::Temp qw(tempdir);
use Retell;

my $pkg = 'libnginx-mod-http-retell';
my $so = '/usr/lib/nginx/modules/ngx_http_retell_module.so';
my $available = '/usr/share/nginx/modules-available/mod-http-retell.conf';
my $enabled = '/etc/nginx/modules-enabled/50-mod-http-retell.conf';
my $share = "/usr/share/$pkg";
my $doc = "/usr/share/doc/$pkg";
my $nginx = '/usr/sbin/nginx';

# set while the package is on the system: purged on any way out
my $installed = 0;
END { local $?; dpkg('--purge', $pkg) if $installed }

plan skip_all => 'dpkg is not usable here (not a Debian system?)'
    unless system('dpkg --version >/dev/null 2>&1') == 0;
# the package is built for the system nginx, not the one under test
# (make test-asan's)
plan skip_all => "the package is for $nginx, the suite runs another nginx"
    if ($ENV{TEST_NGINX_BINARY} // $nginx) ne $nginx;

# --- the build: make deb (up to date when nothing changed) -----------------

# its own make, not a sub-make of "make test"
delete local @ENV{qw(MAKEFLAGS MFLAGS MAKELEVEL)};
my $out = `make -s -C $REPO deb 2>&1`;
is($?, 0, 'make deb builds the package') or diag($out);
my ($deb) = glob "$REPO/build/deb/${pkg}_*.deb";
ok($deb && -f $deb, 'the .deb is in build/deb/') or BAIL_OUT('no package');

# --- its contents ----------------------------------------------------------

my %files = map { m{^\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+\.(/\S*?)/?(?: -> (\S+))?$}
                  ? ($1 => $2 // '') : () } split /\n/, `dpkg-deb -c $deb`;

for my $f ($so, $available,
           (map { "$share/sql/" . (m{([^/]+)$})[0] } glob "$Retell::REPO/sql/*.sql"),
           (map { "$share/tools/$_" } qw(migrate retell-send retell-replay
                                         retell-prune)),
           "$doc/README.md.gz", "$doc/docs/operations.md.gz", "$doc/copyright",
           "$doc/examples/retell-webhooks.conf",
           "$doc/examples/retell-rate-limit.conf",
           "$doc/examples/retell-prune.cron",
           '/usr/share/man/man8/retell-migrate.8.gz') {
    ok(exists $files{$f}, "the package holds $f");
}
for my $t (qw(migrate send replay prune)) {
    my $target = $t eq 'migrate' ? 'migrate' : "retell-$t";
    is($files{"/usr/sbin/retell-$t"},
       "../share/$pkg/tools/$target", "/usr/sbin/retell-$t links to the tool");
}
is_deeply([ grep { m{^/etc/} } sort keys %files ], [],
          'nothing under /etc: no configuration is enabled by the package');

my $snippet = `dpkg-deb --fsys-tarfile $deb | tar -xOf - .$available`;
is($snippet, "load_module modules/ngx_http_retell_module.so;\n",
   'the snippet dh_nginx generates loads the module');

# the nginx-abi the installed nginx-dev names (dh_nginx reads the same file)
my ($abi) = `cat /usr/share/nginx/src/debian/libnginx-mod.abisubstvars`
            =~ /^nginx:abi=(\S+)/m;
my $depends = `dpkg-deb -f $deb Depends`;
like($depends, qr/(?:^|, )\Q$abi\E(?:,|$)/m, "Depends on $abi")
    or diag($depends);
like($depends, qr/\blibpq5\b.*\blibyajl2\b/, 'Depends on libpq5 and libyajl2');

# --- lintian: no errors (warnings are reported) ----------------------------

SKIP: {
    skip 'lintian is not installed', 1
        unless system('command -v lintian >/dev/null 2>&1') == 0;
    my $lint = `lintian $deb 2>&1`;
    my @errors = grep { /^E: / } split /\n/, $lint;
    is_deeply(\@errors, [], 'lintian reports no error');
    my @rest = grep { /^[WIP]: / } split /\n/, $lint;
    note("lintian: $_") for @rest;
}

# --- installed, removed, purged --------------------------------------------

SKIP: {
    skip 'installing needs root: the package was only built and inspected', 1
        if $> != 0;
    my $status = `dpkg-query -W -f '\${Status}' $pkg 2>/dev/null`;
    skip "$pkg is installed here already: the test does not touch it", 1
        if $status =~ /installed|config-files|unpacked/;

    my @found = sort glob '/etc/nginx/modules-enabled/*';
    $installed = 1;
    my ($rc, $log) = dpkg('--install', $deb);
    is($rc, 0, 'dpkg --install') or diag($log);

    ok(-f $so, 'the module is under /usr/lib/nginx/modules');
    ok(-l $enabled && readlink($enabled) eq $available,
       "enabled on install: $enabled links to the snippet");

    my $conf = test_conf();
    my ($ok, $t) = nginx_t($conf);
    ok($ok, 'nginx -t on a configuration that uses the module') or diag($t);

    ($ok, $t) = nginx_t(example_conf());
    ok($ok, 'nginx -t on the example configuration (its files made up)')
        or diag($t);

    migrations();

    ($rc, $log) = dpkg('--remove', $pkg);
    is($rc, 0, 'dpkg --remove') or diag($log);
    ok(!-e $enabled && !-l $enabled, 'removed: the module is disabled');
    ok(-l "$enabled.removed", 'the disabling is remembered (.removed link)');
    ok(!-e $so && !-e "/usr/sbin/retell-migrate", 'removed: the files are gone');
    ($ok, $t) = nginx_t($conf);
    like($t, qr/unknown directive "retell_postgres"/,
         'nginx -t no longer knows the module');

    ($rc, $log) = dpkg('--purge', $pkg);
    is($rc, 0, 'dpkg --purge') or diag($log);
    $installed = 0;
    ok(!-l "$enabled.removed", 'purged: no link is left');
    is(`dpkg-query -W -f '\${Status}' $pkg 2>/dev/null`, '',
       'purged: dpkg knows nothing of it');
    is_deeply([ sort glob '/etc/nginx/modules-enabled/*' ], \@found,
              '/etc/nginx/modules-enabled as the test found it');
}

done_testing();


# dpkg, waiting for its lock while another apt or dpkg holds it
sub dpkg {
    my (@args) = @_;
    local $ENV{DEBIAN_FRONTEND} = 'noninteractive';
    my ($rc, $out);
    for (1 .. 60) {
        $out = `dpkg @args 2>&1`;
        $rc = $? >> 8;
        last unless $rc && $out =~ /lock/i;
        sleep 2;
    }
    return ($rc, $out);
}

# nginx's own way in: the modules-enabled snippets, then the directives
# and the example rate limit (copied: it goes with the package), as an
# operator would write them
sub test_conf {
    my $dir = tempdir(CLEANUP => 1);
    system('cp', "$doc/examples/retell-rate-limit.conf", $dir) == 0 or die;
    open my $fh, '>', "$dir/nginx.conf" or die $!;
    print $fh <<"_EOC_";
include /etc/nginx/modules-enabled/*.conf;
error_log $dir/error.log;
pid $dir/nginx.pid;
events {}
http {
    include $dir/retell-rate-limit.conf;
    retell_postgres "host=127.0.0.1 port=1 dbname=x";
    server {
        listen 127.0.0.1:1;
        location = /hook {
            limit_req zone=retell_webhooks burst=10 nodelay;
            retell_webhook inbound;
            retell_webhook_secret k;
        }
        location = /metrics {
            retell_metrics;
        }
    }
}
_EOC_
    close $fh;
    return $dir;
}

# examples/retell-webhooks.conf in an http block, with its key, its
# certificate and the rate limit in a temp dir instead of /etc
sub example_conf {
    my $dir = tempdir(CLEANUP => 1);
    system("cp $doc/examples/retell-rate-limit.conf $dir && echo k > $dir/retell.key"
           . " && openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=hooks"
           . " -days 1 -keyout $dir/key.pem -out $dir/cert.pem 2>/dev/null") == 0
        or die 'cannot make the example files';
    open my $in, '<', "$doc/examples/retell-webhooks.conf" or die $!;
    my $example = do { local $/; <$in> };
    $example =~ s{/etc/nginx/}{$dir/}g;
    $example =~ s{/etc/ssl/certs/\S+;}{$dir/cert.pem;};
    $example =~ s{/etc/ssl/private/\S+;}{$dir/key.pem;};
    $example =~ s{listen 443 }{listen 127.0.0.1:1 };
    open my $fh, '>', "$dir/nginx.conf" or die $!;
    print $fh "include /etc/nginx/modules-enabled/*.conf;\n"
        . "pid $dir/nginx.pid;\nevents {}\nhttp {\n$example}\n";
    close $fh;
    return $dir;
}

# the system's prefix: "load_module modules/..." is relative to it
sub nginx_t {
    my ($dir) = @_;
    my $out = `$nginx -t -e $dir/error.log -c $dir/nginx.conf 2>&1`;
    return ($? == 0, $out);
}

# the installed tools against a database of their own in the test cluster
sub migrations {
    my $db = "retell_deb_$$";
    (my $conn = $Retell::PG) =~ s/\bdbname=\S+/dbname=$db/;
    dbh()->do(qq{CREATE DATABASE "$db"});
    my $pg = $Retell::PG;
    my $done = eval {
        my $out = `/usr/sbin/retell-migrate "$conn" 2>&1`;
        is($?, 0, 'retell-migrate applies the installed migrations')
            or diag($out);
        $out = `/usr/sbin/retell-migrate "$conn" 2>&1`;
        is($?, 0, 'and again (they are idempotent)') or diag($out);

        local $Retell::PG = $conn;
        is(db_value(q{SELECT count(*) FROM pg_proc p JOIN pg_namespace n
                          ON n.oid = p.pronamespace
                       WHERE n.nspname = 'retell'
                         AND p.proname IN ('apply_webhook', 'prune_payloads',
                                           'caller_context')}),
           3, 'the schema of every migration is there');

        $out = `/usr/sbin/retell-prune "$conn" 2>&1`;
        is($?, 0, 'retell-prune runs from the installed path') or diag($out);
        $out = `/usr/sbin/retell-replay --db "$conn" 2>&1`;
        is($?, 0, 'retell-replay runs from the installed path') or diag($out);
        $out = `/usr/sbin/retell-send --secret k --header-only $REPO/t/samples/inbound-call_analyzed-action_required.json 2>&1`;
        like($out, qr/^X-Retell-Signature: v=\d+,d=[0-9a-f]{64}$/,
             'retell-send runs from the installed path');
        dbh()->disconnect;
        1;
    };
    my $err = $@;
    local $Retell::PG = $pg;
    dbh()->do(qq{DROP DATABASE IF EXISTS "$db"});
    die $err unless $done;
}
