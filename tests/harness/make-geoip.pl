#!/usr/bin/perl
# SPDX-License-Identifier: GPL-3.0-or-later
# Writes a small MaxMind DB for the tests: make-geoip.pl OUT TYPE NET=CC...
# (e.g. 127.0.0.0/8=FR), each network with country.iso_code CC. Reserved
# networks (loopback, documentation) are kept: the tests' visitors come
# from 127.0.0.1.
use strict;
use warnings;
use MaxMind::DB::Writer::Tree;

my ($out, $type, @networks) = @ARGV;
die "usage: make-geoip.pl OUT TYPE NETWORK=CC...\n" unless defined $type;
my %types = (country => 'map', iso_code => 'utf8_string');
my $tree = MaxMind::DB::Writer::Tree->new(
  ip_version               => 6,
  record_size              => 24,
  database_type            => $type,
  languages                => ['en'],
  description              => { en => 'CallDocker test database' },
  map_key_type_callback    => sub { $types{ $_[0] } },
  remove_reserved_networks => 0,
);
for my $pair (@networks) {
  my ($network, $country) = split /=/, $pair, 2;
  $tree->insert_network($network, { country => { iso_code => $country } });
}
open my $fh, '>:raw', $out or die "$out: $!\n";
$tree->write_tree($fh);
close $fh or die "$out: $!\n";
