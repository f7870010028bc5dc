// Package faulttest drives the real ledger binary and the real HTTP server
// through faults and hostile clients: a full or read-only disk, damaged
// projection files, a damaged ledger file, a clock that steps back, slow
// clients, a thousand event subscribers, and requests without a token. It
// holds tests only; the fuzz targets live next to the code they fuzz.
//
// Tests that need root (mounting a tmpfs) skip themselves when the mount is
// refused. Every test uses ports of LEDGER_RANGE 28500-28999 on loopback.
package faulttest
