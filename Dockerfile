# The fulfillment binary for a scale-out deployment (docker-compose.yml): one image, every
# role chosen by its command (dispatcher, worker <step>, topics create --saga, ...).
FROM swift:6.3-bookworm AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        librdkafka-dev libsqlite3-dev libpq-dev libmimalloc-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --product fulfillment \
    && cp "$(swift build -c release --show-bin-path)/fulfillment" /usr/local/bin/fulfillment \
    && cp -R "$(swift build -c release --show-bin-path)/fulfillment_OperatorHTTP.resources" /usr/local/bin/

FROM swift:6.3-bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        librdkafka1 libsqlite3-0 libpq5 libmimalloc2.0 procps curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/fulfillment /usr/local/bin/fulfillment
# The web console's files sit beside the binary, where it looks for them.
COPY --from=build /usr/local/bin/fulfillment_OperatorHTTP.resources /usr/local/bin/fulfillment_OperatorHTTP.resources
COPY config /etc/fulfillment
WORKDIR /var/lib/fulfillment
ENTRYPOINT ["fulfillment"]
CMD ["--help"]
