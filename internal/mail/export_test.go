package mail

import "crypto/x509"

// SetRootCAs makes s trust the certificates in pool (the tests' servers use a
// self-signed certificate).
func SetRootCAs(s *SMTP, pool *x509.CertPool) { s.tlsConfig.RootCAs = pool }
