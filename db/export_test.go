package db

// ExecForTest runs a statement inside a writer operation.
func ExecForTest(t *Tx, query string) error {
	_, err := t.exec(query)
	return err
}
