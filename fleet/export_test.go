package fleet

import "time"

// SetClockSkew sets how far a reader allows a host's clock to be ahead of
// the hub's, so that a test can place events on the stream's time without
// waiting out the default.
func SetClockSkew(r *Reader, d time.Duration) { r.skew = d }
