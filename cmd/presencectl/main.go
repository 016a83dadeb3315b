// Command presencectl administers a presenced server through its REST API:
// import NDJSON with a progress bar, export the membership as NDJSON, create
// and revoke tokens, list groups and members. It reads PRESENCED_URL and
// PRESENCED_TOKEN, or --url and --token.
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
)

const usage = `presencectl administers a presenced server.

Usage:
  presencectl [--url URL] [--token TOKEN] COMMAND [ARGS]

Commands:
  import FILE                         import NDJSON users, groups, members and roles
  export [FILE]                       write them as NDJSON to import (default: stdout)
  token create --scopes S[,S] [--user ID] [--name N] [--expires 24h]
  token revoke ID
  token list
  groups                              list groups
  members GROUP                       list a group's members
  help                                show this help

Environment: PRESENCED_URL (default http://127.0.0.1:8080), PRESENCED_TOKEN.
`

// errUsage is a command line presencectl cannot run: it exits 2.
var errUsage = errors.New("usage")

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "presencectl:", err)
		os.Exit(1)
	}
}

type ctl struct {
	base, token string
	out, errw   io.Writer
	http        *http.Client
}

// run runs one command. Help that was asked for goes to out and is no
// error; a command line without a command prints the usage to errw and
// returns errUsage.
func run(args []string, out, errw io.Writer) error {
	fs := flag.NewFlagSet("presencectl", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage) }
	base := fs.String("url", envOr("PRESENCED_URL", "http://127.0.0.1:8080"), "server URL")
	token := fs.String("token", os.Getenv("PRESENCED_TOKEN"), "API token")
	if help, err := parseFlags(fs, args, out); help || err != nil {
		return err
	}
	c := &ctl{base: strings.TrimSuffix(*base, "/"), token: *token, out: out, errw: errw, http: &http.Client{}}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprint(errw, usage)
		return errUsage
	}
	switch rest[0] {
	case "help":
		fmt.Fprint(out, usage)
		return nil
	case "import":
		if len(rest) != 2 {
			return errors.New("usage: presencectl import FILE")
		}
		return c.importFile(rest[1])
	case "export":
		if len(rest) > 2 {
			return errors.New("usage: presencectl export [FILE]")
		}
		return c.exportFile(append(rest[1:], "-")[0])
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

// parseFlags parses args into fs. -h and --help print fs's usage to out and
// report help, which is not an error; other mistakes are errors that say
// where to look.
func parseFlags(fs *flag.FlagSet, args []string, out io.Writer) (help bool, err error) {
	fs.SetOutput(io.Discard)
	err = fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(out)
		fs.Usage()
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w (try --help)", err)
	}
	return false, nil
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

func (c *ctl) tokenCmd(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: presencectl token create|revoke|list")
	}
	switch args[0] {
	case "create":
		fs := flag.NewFlagSet("token create", flag.ContinueOnError)
		scopes := fs.String("scopes", "", "comma-separated scopes")
		user := fs.String("user", "", "user the token acts as")
		name := fs.String("name", "", "a name to recognise the token by")
		expires := fs.Duration("expires", 0, "lifetime (0: never expires)")
		if help, err := parseFlags(fs, args[1:], c.out); help || err != nil {
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
