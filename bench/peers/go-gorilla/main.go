// Peer server of bench/peers: the seed talk's stage 3 ("Going Infinite, handling 1M
// websockets connections in Go"), gorilla/websocket 1.5.0 (Debian) upgraded by net/http, then each
// connection's fd added to one epoll set and served by one goroutine instead of one
// goroutine per connection. Tuned for many idle connections as gorilla's docs say: small
// ReadBufferSize (the hijacked 4 KiB net/http reader is then dropped) and a WriteBufferPool
// (a write buffer is held only during a write). No compression. Prints `listening on ADDR`.
//
// With `-cert FILE -key FILE` it serves over Go's crypto/tls (its defaults: TLS 1.3 and 1.2,
// session tickets on), the TLS row of bench/peers/tls.py, with one goroutine per connection
// (net/http's handler reads and echoes): the epoll trick does not carry over to TLS, since
// tls.Conn buffers decrypted records a readiness wait on the fd cannot see.
// Usage: go-gorilla [ADDR] [-cert FILE -key FILE]
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"

	"github.com/gorilla/websocket"
)

// epollEvents is how many ready connections one epoll_wait returns (the talk uses 100).
const epollEvents = 100

type epoller struct {
	fd    int
	lock  sync.RWMutex
	conns map[int]*websocket.Conn
}

func connFd(c *websocket.Conn) int {
	raw, err := c.UnderlyingConn().(*net.TCPConn).SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	_ = raw.Control(func(f uintptr) { fd = int(f) })
	return fd
}

func (e *epoller) add(c *websocket.Conn) error {
	fd := connFd(c)
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLHUP, Fd: int32(fd)}
	if err := syscall.EpollCtl(e.fd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return err
	}
	e.lock.Lock()
	e.conns[fd] = c
	e.lock.Unlock()
	return nil
}

func (e *epoller) remove(c *websocket.Conn) {
	fd := connFd(c)
	_ = syscall.EpollCtl(e.fd, syscall.EPOLL_CTL_DEL, fd, nil)
	e.lock.Lock()
	delete(e.conns, fd)
	e.lock.Unlock()
}

func (e *epoller) wait(events []syscall.EpollEvent) []*websocket.Conn {
	n, err := syscall.EpollWait(e.fd, events, 100)
	if err != nil {
		return nil
	}
	out := make([]*websocket.Conn, 0, n)
	e.lock.RLock()
	for i := 0; i < n; i++ {
		if c, ok := e.conns[int(events[i].Fd)]; ok {
			out = append(out, c)
		}
	}
	e.lock.RUnlock()
	return out
}

func (e *epoller) serve() {
	events := make([]syscall.EpollEvent, epollEvents)
	for {
		for _, c := range e.wait(events) {
			mt, msg, err := c.ReadMessage()
			if err == nil {
				err = c.WriteMessage(mt, msg)
			}
			if err != nil {
				e.remove(c)
				_ = c.Close()
			}
		}
	}
}

// echoTLS is the handler of the TLS mode: the connection's own goroutine reads and echoes.
func echoTLS(upgrader *websocket.Upgrader) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err == nil {
				err = c.WriteMessage(mt, msg)
			}
			if err != nil {
				return
			}
		}
	}
}

func main() {
	addr := "127.0.0.1:0"
	args := os.Args[1:]
	if len(args) > 0 && args[0][0] != '-' {
		addr, args = args[0], args[1:]
	}
	cert := flag.String("cert", "", "PEM certificate chain (TLS mode)")
	key := flag.String("key", "", "PEM private key (TLS mode)")
	if err := flag.CommandLine.Parse(args); err != nil || (*cert == "") != (*key == "") {
		fmt.Fprintln(os.Stderr, "usage: go-gorilla [ADDR] [-cert FILE -key FILE]")
		os.Exit(2)
	}
	upgrader := websocket.Upgrader{
		ReadBufferSize:  256,
		WriteBufferSize: 256,
		WriteBufferPool: &sync.Pool{},
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	if *cert != "" {
		pair, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			fmt.Fprintln(os.Stderr, "certificate:", err)
			os.Exit(1)
		}
		http.HandleFunc("/", echoTLS(&upgrader))
		l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{pair},
			NextProtos: []string{"http/1.1"}})
	} else {
		epfd, err := syscall.EpollCreate1(0)
		if err != nil {
			fmt.Fprintln(os.Stderr, "epoll_create1:", err)
			os.Exit(1)
		}
		e := &epoller{fd: epfd, conns: make(map[int]*websocket.Conn)}
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			c, err := upgrader.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			if err := e.add(c); err != nil {
				_ = c.Close()
			}
		})
		go e.serve()
	}
	fmt.Printf("listening on %s\n", l.Addr())
	fmt.Fprintln(os.Stderr, http.Serve(l, nil))
	os.Exit(1)
}
