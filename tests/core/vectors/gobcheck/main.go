// gobcheck decodes, with Go's own encoding/gob, the stream of an Acra keystore v1 export
// bundle (what acra-keys import decodes: []*keystore.Key) from stdin, and prints the
// entries as JSON. Used by make_acra_v1_bundle.py to check keyloader's gob encoder.
package main

import (
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"os"
)

// Key is keystore.Key of cossacklabs/acra (keystore/keystore.go).
type Key struct {
	Name    string
	Content []byte
}

func main() {
	var keys []*Key
	if err := gob.NewDecoder(os.Stdin).Decode(&keys); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	out := []map[string]string{}
	for _, key := range keys {
		out = append(out, map[string]string{"name": key.Name, "content": hex.EncodeToString(key.Content)})
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
