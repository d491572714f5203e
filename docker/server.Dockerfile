# The central: one statically linked binary and nothing else (no shell, no libc to patch).
# Built from target/docker by `make docker-image`; settings arrive through a mounted file
# and the environment (see docker-compose-dev.yaml), never baked into the image.
FROM scratch
COPY server /server
ENTRYPOINT ["/server"]
