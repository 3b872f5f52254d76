{
  "variables": {
    "sanitize%": 0
  },
  "targets": [
    {
      "target_name": "ws_native",
      "sources": [
        "src/binding.c",
        "src/client.c",
        "src/conn.c",
        "src/deflate.c",
        "src/frame.c",
        "src/handshake.c",
        "src/heartbeat.c",
        "src/http.c",
        "src/loop.c",
        "src/outbox.c",
        "src/publish.c",
        "src/rand.c",
        "src/resolve.c",
        "src/server.c",
        "src/slots.c",
        "src/tls.c",
        "src/topics.c",
        "src/utf8.c"
      ],
      "defines": ["NAPI_VERSION=8"],
      "cflags!": ["-fno-exceptions"],
      "cflags_c": [
        "-std=gnu11",
        "-Wall",
        "-Wextra",
        "-O2",
        "-fvisibility=hidden"
      ],
      "conditions": [
        ["sanitize==1", {
          "cflags_c": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"],
          "ldflags": ["-fsanitize=address,undefined"]
        }]
      ]
    }
  ]
}
