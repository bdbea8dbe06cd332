# herald in a container, on debian:12-slim.
#
#   docker build -t herald .
#   docker run -p 8080:8080 -v herald-data:/var/lib/herald herald
#
# Not built on the machine herald is developed on (it has no container
# runtime); tests/e2e/test_package.py tests the Debian package and the
# systemd unit instead. See docs/deploy.md.

# ---- build: the same Debian packages scripts/install-deps.sh installs ----
FROM debian:12 AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config \
        libuv1-dev libsqlite3-dev libjansson-dev libwslay-dev libhttp-parser-dev \
        libcurl4-openssl-dev libnghttp2-dev libssl-dev libjwt-dev libcmocka-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    && cmake --build build -j"$(nproc)" --target herald \
    && make install BIN=build/herald PREFIX=/usr/local DESTDIR=/install

# ---- run: the runtime libraries only, an unprivileged user ----
FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        libuv1 libsqlite3-0 libjansson4 libwslay1 libhttp-parser2.9 libcurl4 \
        libnghttp2-14 libssl3 libjwt0 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/herald --shell /usr/sbin/nologin herald \
    && install -d -o herald -g herald -m 0700 /var/lib/herald
COPY --from=build /install/usr/local/bin/herald /usr/local/bin/herald
COPY --from=build /install/etc/herald/herald.conf /etc/herald/herald.conf
USER herald
VOLUME /var/lib/herald
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
# listen on every interface inside the container; the rest from the config
# file (mount your own over /etc/herald/herald.conf) or HERALD_* variables.
ENTRYPOINT ["/usr/local/bin/herald", "serve", "--config", "/etc/herald/herald.conf", \
            "--data-dir", "/var/lib/herald", "--listen", "0.0.0.0:8080"]
