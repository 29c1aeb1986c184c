package pii

// Unwrap exposes a stored key's unwrapping to the tests, which look for the
// plain data key in the store's files.
func (r *Keyring) Unwrap(ref string, stored []byte) ([]byte, error) { return r.unwrap(ref, stored) }
