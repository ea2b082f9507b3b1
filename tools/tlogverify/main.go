// Command tlogverify checks TAC Gateway audit-log artifacts with Go's reference
// transparency-log packages (golang.org/x/mod/sumdb/note and sumdb/tlog), an
// implementation independent of the gateway's Python code.
//
//	tlogverify checkpoint  -vkey VKEY NOTE_FILE
//	tlogverify inclusion   -vkey VKEY -leaf EVENT_FILE PROOF_FILE
//	tlogverify consistency -vkey VKEY -old NOTE_FILE -new NOTE_FILE PROOF_FILE
//
// VKEY is the log's verifier key (<name>+<hash>+<base64 key>). NOTE_FILE is a signed
// C2SP tlog-checkpoint. EVENT_FILE holds the event's canonical JSON bytes (the leaf).
// An inclusion PROOF_FILE is a C2SP tlog-proof (c2sp.org/tlog-proof@v1); a consistency
// PROOF_FILE is "tac-gateway/tlog-consistency@v1", "old N", "new M", then one base64
// hash per line. Exit status: 0 verified, 1 not verified, 2 usage error.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "checkpoint":
		err = runCheckpoint(os.Args[2:])
	case "inclusion":
		err = runInclusion(os.Args[2:])
	case "consistency":
		err = runConsistency(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tlogverify:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: tlogverify checkpoint|inclusion|consistency -vkey VKEY ... FILE")
	os.Exit(2)
}

func runCheckpoint(args []string) error {
	fs := flag.NewFlagSet("checkpoint", flag.ExitOnError)
	vkey := fs.String("vkey", "", "verifier key")
	fs.Parse(args)
	if *vkey == "" || fs.NArg() != 1 {
		usage()
	}
	cp, err := openCheckpointFile(*vkey, fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Printf("checkpoint OK: %s size %d root %s\n", cp.origin, cp.size, cp.root)
	return nil
}

func runInclusion(args []string) error {
	fs := flag.NewFlagSet("inclusion", flag.ExitOnError)
	vkey := fs.String("vkey", "", "verifier key")
	leafFile := fs.String("leaf", "", "file holding the leaf (canonical event bytes)")
	fs.Parse(args)
	if *vkey == "" || *leafFile == "" || fs.NArg() != 1 {
		usage()
	}
	leaf, err := os.ReadFile(*leafFile)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	index, proof, noteText, err := parseTlogProof(raw)
	if err != nil {
		return err
	}
	cp, err := openCheckpoint(*vkey, noteText)
	if err != nil {
		return err
	}
	if err := tlog.CheckRecord(proof, cp.size, cp.root, index, tlog.RecordHash(leaf)); err != nil {
		return fmt.Errorf("leaf %d is not in the tree of size %d: %w", index, cp.size, err)
	}
	fmt.Printf("inclusion OK: leaf %d in %s size %d\n", index, cp.origin, cp.size)
	return nil
}

func runConsistency(args []string) error {
	fs := flag.NewFlagSet("consistency", flag.ExitOnError)
	vkey := fs.String("vkey", "", "verifier key")
	oldFile := fs.String("old", "", "older checkpoint")
	newFile := fs.String("new", "", "newer checkpoint")
	fs.Parse(args)
	if *vkey == "" || *oldFile == "" || *newFile == "" || fs.NArg() != 1 {
		usage()
	}
	older, err := openCheckpointFile(*vkey, *oldFile)
	if err != nil {
		return err
	}
	newer, err := openCheckpointFile(*vkey, *newFile)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	oldSize, newSize, proof, err := parseConsistency(raw)
	if err != nil {
		return err
	}
	if oldSize != older.size || newSize != newer.size {
		return fmt.Errorf("proof is from %d to %d, checkpoints are %d and %d",
			oldSize, newSize, older.size, newer.size)
	}
	if err := tlog.CheckTree(proof, newer.size, newer.root, older.size, older.root); err != nil {
		return fmt.Errorf("size %d does not extend size %d: %w", newer.size, older.size, err)
	}
	fmt.Printf("consistency OK: %s size %d extends size %d\n", newer.origin, newer.size, older.size)
	return nil
}

func openCheckpointFile(vkey, path string) (checkpoint, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return checkpoint{}, err
	}
	return openCheckpoint(vkey, raw)
}

// openCheckpoint verifies the note's signature with sumdb/note, then parses the
// C2SP tlog-checkpoint body: origin, decimal size, base64 root hash.
func openCheckpoint(vkey string, msg []byte) (checkpoint, error) {
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return checkpoint{}, fmt.Errorf("verifier key: %w", err)
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		return checkpoint{}, fmt.Errorf("checkpoint signature: %w", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return checkpoint{}, errors.New("checkpoint body is not three lines")
	}
	if lines[0] != verifier.Name() {
		return checkpoint{}, fmt.Errorf("checkpoint origin %q is not %q", lines[0], verifier.Name())
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return checkpoint{}, fmt.Errorf("checkpoint size %q", lines[1])
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		return checkpoint{}, fmt.Errorf("checkpoint root: %w", err)
	}
	return checkpoint{lines[0], size, root}, nil
}

func parseTlogProof(raw []byte) (int64, tlog.RecordProof, []byte, error) {
	head, noteText, ok := bytes.Cut(raw, []byte("\n\n"))
	if !ok {
		return 0, nil, nil, errors.New("tlog-proof: no blank line before the checkpoint")
	}
	lines := strings.Split(string(head), "\n")
	if lines[0] != "c2sp.org/tlog-proof@v1" {
		return 0, nil, nil, errors.New("not a c2sp.org/tlog-proof@v1 proof")
	}
	lines = lines[1:]
	if len(lines) > 0 && strings.HasPrefix(lines[0], "extra ") {
		lines = lines[1:]
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
		return 0, nil, nil, errors.New("tlog-proof: no index line")
	}
	index, err := strconv.ParseInt(strings.TrimPrefix(lines[0], "index "), 10, 64)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("tlog-proof index: %w", err)
	}
	hashes, err := parseHashes(lines[1:])
	return index, tlog.RecordProof(hashes), noteText, err
}

func parseConsistency(raw []byte) (int64, int64, tlog.TreeProof, error) {
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) < 3 || lines[0] != "tac-gateway/tlog-consistency@v1" {
		return 0, 0, nil, errors.New("not a tac-gateway/tlog-consistency@v1 proof")
	}
	oldSize, err1 := strconv.ParseInt(strings.TrimPrefix(lines[1], "old "), 10, 64)
	newSize, err2 := strconv.ParseInt(strings.TrimPrefix(lines[2], "new "), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, nil, errors.New("consistency proof: bad old/new lines")
	}
	hashes, err := parseHashes(lines[3:])
	return oldSize, newSize, tlog.TreeProof(hashes), err
}

func parseHashes(lines []string) ([]tlog.Hash, error) {
	var out []tlog.Hash
	for _, line := range lines {
		h, err := tlog.ParseHash(line)
		if err != nil {
			return nil, fmt.Errorf("proof hash %q: %w", line, err)
		}
		out = append(out, h)
	}
	return out, nil
}
