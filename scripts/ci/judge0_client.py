"""Judge0's own Python client (the `judge0` package from PyPI) against code-exec through the
gateway: it reads /languages and /config_info, resolves its language aliases through /about,
submits in base64, polls, and parses every field of the result. Runs a Python program with
stdin and an expected output, a C program, a wrong answer and a compile error."""

import os
import sys

import judge0

base = os.environ["GATEWAY"] + "/api/v1/code-exec"
client = judge0.Client(base, headers={"Authorization": "Bearer " + os.environ["API_KEY"]})

failures = []


def check(label, ok, detail):
    print(("ok   " if ok else "FAIL ") + label + ("" if ok else f": {detail}"))
    if not ok:
        failures.append(label)


python = judge0.run(
    client=client,
    source_code="name = input()\nprint(f'hello, {name}')\n",
    language=judge0.PYTHON,
    stdin="judge0",
    expected_output="hello, judge0",
)
check("python: accepted", python.status == judge0.Status.ACCEPTED, python.status)
check("python: stdout", python.stdout == "hello, judge0\n", repr(python.stdout))
check("python: time and memory", python.time is not None and python.memory, (python.time, python.memory))

c = judge0.run(
    client=client,
    source_code='#include <stdio.h>\nint main(void) { printf("%d\\n", 6 * 7); return 0; }\n',
    language=judge0.C,
)
check("c: accepted", c.status == judge0.Status.ACCEPTED, c.status)
check("c: stdout", c.stdout == "42\n", repr(c.stdout))

wrong = judge0.run(client=client, source_code="print(2 + 2)", language=judge0.PYTHON, expected_output="5")
check("wrong answer", wrong.status == judge0.Status.WRONG_ANSWER, wrong.status)

broken = judge0.run(client=client, source_code="int main(void) { return nope; }", language=judge0.C)
check("compile error", broken.status == judge0.Status.COMPILATION_ERROR, broken.status)
check("compile output", "nope" in (broken.compile_output or ""), repr(broken.compile_output))

sys.exit(1 if failures else 0)
