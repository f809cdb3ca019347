"""`python -m tests.support.fake_acr`, unchanged except that its sockets set TCP_NODELAY.

The stock server writes the status line and headers, then the body, in two `send()` calls. On a
kept-alive connection (the ACR SDK keeps one), Nagle's algorithm holds the body back until the
client's delayed ACK, about 40 ms later: every fake ACR answer took ~44 ms against 0.2 ms with
TCP_NODELAY (measured here). That wait belongs to the fake, not to the agent, so the benchmarks
run this launcher; `--fake-nagle` runs the stock one.

    python -m bench.peers.fake_acr --port P --registry 127.0.0.1:5000
"""

from tests.support import fake_acr

fake_acr._Handler.disable_nagle_algorithm = (
    True  # StreamRequestHandler: setsockopt(TCP_NODELAY) per connection
)

if __name__ == "__main__":
    fake_acr.main()
