# claimcheck in a small image. Not built in CI here (see README, "Operating claimcheck").
#   docker build -t claimcheck .
#   docker run -p 9464:9464 -v /var/log/daemon:/var/log/daemon:ro claimcheck \
#     serve --listen 0.0.0.0:9464 --claims 'go=/var/log/daemon/*.log' --store /var/lib/claimcheck/state.db
FROM rust:1.85-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && strip target/release/claimcheck

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/claimcheck /usr/local/bin/claimcheck
# the store lives here: mount a volume to keep it across restarts
WORKDIR /var/lib/claimcheck
USER nonroot
EXPOSE 9464
ENV CLAIMCHECK_LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/claimcheck"]
CMD ["serve", "--listen", "0.0.0.0:9464", "--stdin", "dispatch"]
