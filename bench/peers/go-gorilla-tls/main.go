// Peer server of bench/peers' TLS rows: Go crypto/tls under net/http and gorilla/websocket
// 1.5.0 (Debian), the Go stack issue 22 names. One goroutine per connection (net/http's
// handler goroutine reads and echoes): the plain row's epoll trick does not carry over to TLS,
// since tls.Conn buffers decrypted records a readiness wait on the fd cannot see. Buffers as
// the plain row: ReadBufferSize 256, WriteBufferSize 256 with a WriteBufferPool. crypto/tls
// as configured by default (TLS 1.3 and 1.2, session tickets on). No compression.
// Usage: go-gorilla-tls [ADDR] --cert FILE --key FILE. Prints `listening on ADDR`.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"

	"github.com/gorilla/websocket"
)

func main() {
	cert := flag.String("cert", "", "PEM certificate chain")
	key := flag.String("key", "", "PEM private key")
	addr := "127.0.0.1:0"
	args := os.Args[1:]
	if len(args) > 0 && args[0][0] != '-' {
		addr, args = args[0], args[1:]
	}
	if err := flag.CommandLine.Parse(args); err != nil || *cert == "" || *key == "" {
		fmt.Fprintln(os.Stderr, "usage: go-gorilla-tls [ADDR] --cert FILE --key FILE")
		os.Exit(2)
	}
	pair, err := tls.LoadX509KeyPair(*cert, *key)
	if err != nil {
		fmt.Fprintln(os.Stderr, "certificate:", err)
		os.Exit(1)
	}
	upgrader := websocket.Upgrader{
		ReadBufferSize:  256,
		WriteBufferSize: 256,
		WriteBufferPool: &sync.Pool{},
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, msg); err != nil {
				return
			}
		}
	})
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", l.Addr())
	tl := tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{pair},
		NextProtos: []string{"http/1.1"}})
	fmt.Fprintln(os.Stderr, http.Serve(tl, nil))
	os.Exit(1)
}
