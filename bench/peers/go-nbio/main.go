// Peer server of bench/peers: lesismal/nbio v1.6.8 websocket echo in its non-blocking
// mode (IOModNonBlocking: every connection served by nbio's epoll pollers, no goroutine per
// connection), configured as nbio's README says for massive connection counts: one poller
// per core given (GOMAXPROCS), payload buffers released to the pool after each OnMessage,
// MaxLoad raised to 1M, no keepalive deadline (the benchmark holds idle connections).
// Prints `listening on ADDR`.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
)

func main() {
	addr := "127.0.0.1:0"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	logging.SetLevel(logging.LevelError)
	upgrader := websocket.NewUpgrader()
	upgrader.KeepaliveTime = 0
	upgrader.OnMessage(func(c *websocket.Conn, mt websocket.MessageType, data []byte) {
		_ = c.WriteMessage(mt, data)
	})
	mux := &http.ServeMux{}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		_, _ = upgrader.Upgrade(w, r, nil)
	})
	engine := nbhttp.NewEngine(nbhttp.Config{
		Network:                 "tcp",
		Addrs:                   []string{addr},
		Handler:                 mux,
		IOMod:                   nbhttp.IOModNonBlocking,
		NPoller:                 runtime.GOMAXPROCS(0),
		MaxLoad:                 1000000,
		ReleaseWebsocketPayload: true,
		Listen: func(network, a string) (net.Listener, error) {
			l, err := net.Listen(network, a)
			if err == nil {
				fmt.Printf("listening on %s\n", l.Addr())
			}
			return l, err
		},
	})
	if err := engine.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "nbio start:", err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	engine.Stop()
}
