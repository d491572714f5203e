# A local stand-in for the busybox image, for machines that cannot pull it: the static
# busybox of Debian's busybox-static package, unpacked (never installed) by
# `make busybox-image`. It only serves scripts/validate-echo-server.sh.
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN ["/bin/mkdir", "-m", "1777", "/tmp"]
CMD ["/bin/sh"]
