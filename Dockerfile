# bitcram-sync as a Cloud Run Job.
#
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/bitcram-sync .
#
# The build stage runs .ci/build-release, the same script CI runs. The
# runtime image holds the binary (which embeds the default transform), the
# default component as a file, and CA certificates; it runs as a non-root
# user. Another transform is picked at run time with TRANSFORM_PLUGIN (for
# example a .wasm on a mounted Cloud Storage volume), without rebuilding.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN .ci/build-release /dist

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /dist/bitcram-sync /usr/local/bin/bitcram-sync
COPY --from=build /dist/bitcram-transform.wasm /opt/bitcram-sync/bitcram-transform.wasm
# Compiled components are cached here; the directory belongs to the user
# that runs the job and to no one else.
ENV PLUGIN_CACHE_DIR=/tmp/bitcram-sync-plugins \
    LOG_FORMAT=json
USER nonroot
# The subcommand is the default argument, so that Cloud Run's --args (which
# replaces CMD) runs another one: --args=db,init runs `bitcram-sync db init`.
ENTRYPOINT ["/usr/local/bin/bitcram-sync"]
CMD ["sync"]
