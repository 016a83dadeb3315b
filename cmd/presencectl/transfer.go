package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/schollz/progressbar/v3"
)

// exportLinesTrailer ends a complete export with its number of lines.
const exportLinesTrailer = "Presenced-Export-Lines"

// importFile sends an NDJSON file to /v1/import?progress=1 and shows a bar
// of the lines the server has applied.
func (c *ctl) importFile(name string) error {
	total, err := countLines(name)
	if err != nil {
		return err
	}
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	bar := progressbar.NewOptions(total,
		progressbar.OptionSetWriter(c.errw),
		progressbar.OptionSetDescription("importing"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("lines"),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish())
	finished := false
	defer func() {
		if !finished { // keep the bar where it stopped, above the error
			_ = bar.Exit()
			fmt.Fprintln(c.errw)
		}
	}()
	req, err := http.NewRequest("POST", c.base+"/v1/import?progress=1", f)
	if err != nil {
		return err
	}
	req.ContentLength = st.Size()
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("import: %w; some lines may be stored: importing the file again completes it", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return answerError("import", resp)
	}
	dec := json.NewDecoder(resp.Body)
	applied := 0
	for {
		var line struct {
			Progress *struct{ Lines int }
			Report   *struct {
				Lines, Created, Updated, Unchanged, Failed int
				Errors                                     []struct {
					Line    int
					Message string
				}
			}
			Error *struct{ Code, Message string }
		}
		if err := dec.Decode(&line); err != nil {
			if err == io.EOF {
				err = errors.New("the server ended the answer without a report")
			}
			return fmt.Errorf("import: %v; %d lines were applied before: importing the file again completes it", err, applied)
		}
		switch r := line.Report; {
		case line.Progress != nil:
			applied = line.Progress.Lines
			_ = bar.Set(applied)
		case line.Error != nil:
			return fmt.Errorf("import: %s: %s", line.Error.Code, line.Error.Message)
		case r != nil:
			_ = bar.Finish()
			finished = true
			fmt.Fprintf(c.out, "lines %d, created %d, updated %d, unchanged %d, failed %d\n",
				r.Lines, r.Created, r.Updated, r.Unchanged, r.Failed)
			for _, e := range r.Errors {
				fmt.Fprintf(c.out, "  line %d: %s\n", e.Line, e.Message)
			}
			if r.Failed > 0 {
				return fmt.Errorf("%d lines failed", r.Failed)
			}
			return nil
		}
	}
}

// countLines counts the lines of a file that hold more than white space:
// the lines an import counts.
func countLines(name string) (int, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, blank := 0, true
	buf := make([]byte, 256<<10)
	for {
		k, err := f.Read(buf)
		for _, b := range buf[:k] {
			switch b {
			case '\n':
				if !blank {
					n++
				}
				blank = true
			case ' ', '\t', '\r', '\v', '\f':
			default:
				blank = false
			}
		}
		if err == io.EOF {
			if !blank {
				n++
			}
			return n, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// exportFile writes the membership as NDJSON to name, or to the standard
// output when name is "-". A file is written under a temporary name and
// renamed once the export is known to be complete, so that a failed export
// never leaves a truncated backup behind.
func (c *ctl) exportFile(name string) error {
	req, err := http.NewRequest("GET", c.base+"/v1/export", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return answerError("export", resp)
	}
	out, summary := c.out, c.errw
	var tmp *os.File
	if name != "-" {
		tmp, err = os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name()) // after the rename, there is nothing to remove
		defer tmp.Close()
		out, summary = tmp, c.out
	}
	bw := bufio.NewWriterSize(out, 256<<10)
	counts := map[string]int{}
	lines := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var rec struct{ Kind string }
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return fmt.Errorf("export: line %d is not a record: %v", lines+1, err)
		}
		counts[rec.Kind]++
		lines++
		bw.Write(sc.Bytes())
		bw.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("export: cut short after %d lines: %w", lines, err)
	}
	if got := resp.Trailer.Get(exportLinesTrailer); got != strconv.Itoa(lines) {
		return fmt.Errorf("export: cut short after %d lines (the server counted %q)", lines, got)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if tmp != nil {
		if err := tmp.Sync(); err != nil {
			return err
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		if err := os.Rename(tmp.Name(), name); err != nil {
			return err
		}
	}
	fmt.Fprintf(summary, "exported %d lines: %d roles, %d users, %d groups, %d members\n",
		lines, counts["role"], counts["user"], counts["group"], counts["member"])
	return nil
}

// answerError turns a non-2xx answer into an error with the server's code
// and message.
func answerError(what string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error struct{ Code, Message string }
	}
	if json.Unmarshal(b, &e) == nil && e.Error.Code != "" {
		return fmt.Errorf("%s: %d %s: %s", what, resp.StatusCode, e.Error.Code, e.Error.Message)
	}
	return fmt.Errorf("%s: %d %s", what, resp.StatusCode, bytes.TrimSpace(b))
}
