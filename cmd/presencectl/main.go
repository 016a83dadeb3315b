// Command presencectl administers a presenced server through its REST API:
// import NDJSON with a progress bar, create and revoke tokens, list groups
// and members. It reads PRESENCED_URL and PRESENCED_TOKEN, or --url and
// --token.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
)

const usage = `presencectl administers a presenced server.

Usage:
  presencectl [--url URL] [--token TOKEN] COMMAND [ARGS]

Commands:
  import FILE                         import NDJSON users, groups, members and roles
  token create --scopes S[,S] [--user ID] [--name N] [--expires 24h]
  token revoke ID
  token list
  groups                              list groups
  members GROUP                       list a group's members

Environment: PRESENCED_URL (default http://127.0.0.1:8080), PRESENCED_TOKEN.
`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "presencectl:", err)
		}
		os.Exit(1)
	}
}

type ctl struct {
	base, token string
	out, errw   io.Writer
	http        *http.Client
}

func run(args []string, out, errw io.Writer) error {
	fs := flag.NewFlagSet("presencectl", flag.ContinueOnError)
	fs.SetOutput(errw)
	fs.Usage = func() { fmt.Fprint(errw, usage) }
	base := fs.String("url", envOr("PRESENCED_URL", "http://127.0.0.1:8080"), "server URL")
	token := fs.String("token", os.Getenv("PRESENCED_TOKEN"), "API token")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := &ctl{base: strings.TrimSuffix(*base, "/"), token: *token, out: out, errw: errw, http: &http.Client{}}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return flag.ErrHelp
	}
	switch rest[0] {
	case "import":
		if len(rest) != 2 {
			return errors.New("usage: presencectl import FILE")
		}
		return c.importFile(rest[1])
	case "token":
		return c.tokenCmd(rest[1:])
	case "groups":
		return c.listGroups()
	case "members":
		if len(rest) != 2 {
			return errors.New("usage: presencectl members GROUP")
		}
		return c.listMembers(rest[1])
	default:
		return fmt.Errorf("unknown command %q (try --help)", rest[0])
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// do sends a request and decodes a JSON answer; a non-2xx answer becomes an
// error carrying the server's message.
func (c *ctl) do(method, path string, body io.Reader, out any) error {
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Code, Message string }
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("%s %s: %d %s: %s", method, path, resp.StatusCode, e.Error.Code, e.Error.Message)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (c *ctl) importFile(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	bar := progressbar.NewOptions64(st.Size(),
		progressbar.OptionSetWriter(c.errw),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetDescription("importing"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish())
	body := progressbar.NewReader(f, bar)
	req, err := http.NewRequest("POST", c.base+"/v1/import?progress=1", &body)
	if err != nil {
		return err
	}
	req.ContentLength = st.Size()
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("import: %d %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var line struct {
			Report *struct {
				Lines, Created, Updated, Unchanged, Failed int
				Errors                                     []struct {
					Line    int
					Message string
				}
			}
			Error *struct{ Code, Message string }
		}
		if err := dec.Decode(&line); err == io.EOF {
			return errors.New("import: the server ended the answer without a report")
		} else if err != nil {
			return err
		}
		if line.Error != nil {
			return fmt.Errorf("import: %s", line.Error.Message)
		}
		if r := line.Report; r != nil {
			_ = bar.Finish()
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

func (c *ctl) tokenCmd(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: presencectl token create|revoke|list")
	}
	switch args[0] {
	case "create":
		fs := flag.NewFlagSet("token create", flag.ContinueOnError)
		fs.SetOutput(c.errw)
		scopes := fs.String("scopes", "", "comma-separated scopes")
		user := fs.String("user", "", "user the token acts as")
		name := fs.String("name", "", "a name to recognise the token by")
		expires := fs.Duration("expires", 0, "lifetime (0: never expires)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		body := map[string]any{"name": *name, "userId": *user, "scopes": strings.Split(*scopes, ",")}
		if *expires > 0 {
			body["expiresAt"] = time.Now().Add(*expires).UTC()
		}
		b, _ := json.Marshal(body)
		var tok struct{ ID, Token string }
		if err := c.do("POST", "/v1/tokens", bytes.NewReader(b), &tok); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "id:    %s\ntoken: %s\n(the token is shown only now)\n", tok.ID, tok.Token)
		return nil
	case "revoke":
		if len(args) != 2 {
			return errors.New("usage: presencectl token revoke ID")
		}
		if err := c.do("DELETE", "/v1/tokens/"+url.PathEscape(args[1]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "revoked %s\n", args[1])
		return nil
	case "list":
		var list struct {
			Items []struct {
				ID, Name, UserID string
				Scopes           []string
				ExpiresAt        *time.Time
			}
		}
		if err := c.do("GET", "/v1/tokens", nil, &list); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tUSER\tSCOPES\tEXPIRES")
		for _, t := range list.Items {
			exp := "never"
			if t.ExpiresAt != nil {
				exp = t.ExpiresAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.UserID, strings.Join(t.Scopes, ","), exp)
		}
		return tw.Flush()
	default:
		return fmt.Errorf("unknown token command %q", args[0])
	}
}

// each walks a cursor-paginated list.
func (c *ctl) each(path string, fn func(json.RawMessage)) error {
	cursor := ""
	for {
		var page struct {
			Items      []json.RawMessage
			NextCursor string
		}
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		if err := c.do("GET", path+sep+"limit=1000&cursor="+url.QueryEscape(cursor), nil, &page); err != nil {
			return err
		}
		for _, it := range page.Items {
			fn(it)
		}
		if page.NextCursor == "" {
			return nil
		}
		cursor = page.NextCursor
	}
}

func (c *ctl) listGroups() error {
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSEQ\tTYPE\tNAME")
	err := c.each("/v1/groups", func(raw json.RawMessage) {
		var g struct {
			ID, Name, Type string
			Seq            int64
		}
		_ = json.Unmarshal(raw, &g)
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", g.ID, g.Seq, g.Type, g.Name)
	})
	if err != nil {
		return err
	}
	return tw.Flush()
}

func (c *ctl) listMembers(group string) error {
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tROLE\tJOINED")
	err := c.each("/v1/groups/"+url.PathEscape(group)+"/members", func(raw json.RawMessage) {
		var m struct {
			UserID, Role string
			JoinedAt     time.Time
		}
		_ = json.Unmarshal(raw, &m)
		fmt.Fprintf(tw, "%s\t%s\t%s\n", m.UserID, m.Role, m.JoinedAt.Format(time.RFC3339))
	})
	if err != nil {
		return err
	}
	return tw.Flush()
}
