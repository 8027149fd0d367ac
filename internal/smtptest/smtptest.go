// Package smtptest is a small SMTP server for tests (RFC 5321's commands
// that a client sending one message uses, no TLS), keeping what it
// receives, and a reader of the e-mails Tally sends (headers, plain text
// and HTML parts, decoded).
package smtptest

import (
	"bufio"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
)

// Server listens on a local port until the test ends. Fail, when set,
// makes it refuse the n-th message (from 1) with a temporary error.
type Server struct {
	ln    net.Listener
	mu    sync.Mutex
	msgs  []Msg
	tries int
	Fail  func(n int) bool
}

// Msg is one message as the server received it.
type Msg struct {
	From string
	To   []string
	Data string // the message, headers and body, as sent (dot-unstuffed)
}

// Start starts a server on 127.0.0.1.
func Start(t testing.TB) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return s
}

// Port is the port the server listens on.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *Server) serve(c net.Conn) {
	defer c.Close()
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	say := func(line string) { w.WriteString(line + "\r\n"); w.Flush() }
	say("220 test ESMTP")
	var m Msg
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			say("250-test")
			say("250 8BITMIME")
		case strings.HasPrefix(cmd, "HELO"):
			say("250 test")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			m = Msg{From: address(line[len("MAIL FROM:"):])}
			say("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			m.To = append(m.To, address(line[len("RCPT TO:"):]))
			say("250 ok")
		case cmd == "DATA":
			say("354 go on")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(strings.TrimPrefix(l, "."))
			}
			m.Data = b.String()
			s.mu.Lock()
			s.tries++
			refuse := s.Fail != nil && s.Fail(s.tries)
			if !refuse {
				s.msgs = append(s.msgs, m)
			}
			s.mu.Unlock()
			if refuse {
				say("451 try again later")
			} else {
				say("250 queued")
			}
		case cmd == "RSET", cmd == "NOOP":
			say("250 ok")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("502 not implemented")
		}
	}
}

// address is a MAIL FROM or RCPT TO path without its brackets and
// parameters ("<a@b> BODY=8BITMIME" is a@b).
func address(arg string) string {
	arg = strings.TrimSpace(arg)
	if i := strings.IndexByte(arg, ' '); i >= 0 {
		arg = arg[:i]
	}
	return strings.Trim(arg, "<>")
}

// Received is every message accepted so far.
func (s *Server) Received() []Msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Msg(nil), s.msgs...)
}

// Mail is a received e-mail: its headers (Subject decoded), and its plain
// text and HTML parts, decoded.
type Mail struct {
	Header      mail.Header
	Subject, To string
	Text, HTML  string
	// PartTypes are the parts' Content-Types, in order.
	PartTypes []string
}

// Parse reads a message (a multipart/alternative with text and HTML).
func Parse(t testing.TB, data string) Mail {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	dec := new(mime.WordDecoder)
	subject, _ := dec.DecodeHeader(msg.Header.Get("Subject"))
	p := Mail{Header: msg.Header, Subject: subject, To: msg.Header.Get("To")}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var body io.Reader = part
		if strings.EqualFold(part.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			body = quotedprintable.NewReader(part) // multipart already decodes it when the header is set; harmless otherwise
		}
		b, _ := io.ReadAll(body)
		ct := part.Header.Get("Content-Type")
		p.PartTypes = append(p.PartTypes, ct)
		switch {
		case strings.HasPrefix(ct, "text/plain"):
			p.Text = string(b)
		case strings.HasPrefix(ct, "text/html"):
			p.HTML = string(b)
		}
	}
	return p
}
