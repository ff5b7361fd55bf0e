"""The web API: validation with clear 422s, same parameters same bytes, grid sizes, the model's description;
the server: slow and idle clients dropped, a cap on connections."""

import http.client
import io
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="ganforge serve needs fastapi: pip install -e '.[serve]'")
from fastapi.testclient import TestClient  # noqa: E402

import ganforge.serve  # noqa: E402
from ganforge.config import MAX_SEED  # noqa: E402
from ganforge.serve import create_app  # noqa: E402
from ganforge.tasks.gan.handle import generate  # noqa: E402


@pytest.fixture(scope="module")
def client(tiny_run):
    """A client of the app for a few steps of DCGAN (BatchNorm, convolutions: the default model)."""
    with TestClient(create_app(tiny_run("dcgan"), max_n=36)) as client:
        yield client


def decode(response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(response.content))


@pytest.mark.parametrize(
    "path, message",
    [
        ("/api/samples?n=0", "n: Input should be greater than or equal to 1 (got '0')"),
        ("/api/samples?n=37", "n: Input should be less than or equal to 36 (got '37')"),
        ("/api/samples?seed=-1", "seed: Input should be greater than or equal to 0 (got '-1')"),
        ("/api/samples?seed=1.5", "seed: Input should be a valid integer"),
        ("/api/samples?seed=abc", "seed: Input should be a valid integer"),
        (f"/api/samples?seed={MAX_SEED + 1}", f"seed: Input should be less than or equal to {MAX_SEED}"),
        ("/api/samples?label=0", "label: this model is unconditional; leave the label out"),
        ("/api/samples?label=-1", "label: Input should be greater than or equal to 0"),
        ("/api/walk?t=1.5", "t: Input should be less than or equal to 1"),
        ("/api/walk?t=nan", "t: Input should be a finite number"),
        ("/api/walk?seed_b=x", "seed_b: Input should be a valid integer"),
        ("/api/walk?n=100", "n: Input should be less than or equal to 36"),
    ],
)
def test_bad_parameters_get_422_with_a_message_naming_what_was_wrong(client, path, message):
    response = client.get(path)
    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_bytes(client):
    first = client.get("/api/samples?n=16&seed=3").content
    assert client.get("/api/samples?n=16&seed=4").content != first
    assert client.get("/api/samples?n=16&seed=3").content == first


def test_the_grid_has_the_size_of_n_images(client):
    assert decode(client.get("/api/samples?n=16&seed=0")).size == (2 + 4 * 30, 2 + 4 * 30)  # 4x4, 2-pixel padding
    assert decode(client.get("/api/samples?n=5&seed=0")).size == (2 + 3 * 30, 2 + 2 * 30)  # 3 a row, 2 rows
    assert decode(client.get("/api/samples?n=36&seed=0")).size == (2 + 6 * 30, 2 + 6 * 30)


def test_the_grid_matches_ganforge_generate(client, tiny_run, tmp_path):
    generate(tiny_run("dcgan"), n=9, seed=7, out=tmp_path / "grid.png", device="cpu")
    assert (tmp_path / "grid.png").read_bytes() == client.get("/api/samples?n=9&seed=7").content


def test_the_walk_starts_and_ends_at_the_two_seeds_grids(client):
    start, end = client.get("/api/samples?n=4&seed=10").content, client.get("/api/samples?n=4&seed=11").content
    walk = "/api/walk?n=4&seed_a=10&seed_b=11&t="
    assert client.get(walk + "0").content == start
    assert client.get(walk + "1").content == end
    middle = client.get(walk + "0.5").content
    assert middle not in (start, end) and client.get(walk + "0.5").content == middle


def test_download_sends_the_same_png_as_an_attachment(client):
    response = client.get("/api/samples?n=4&seed=2&download=true")
    assert response.headers["content-disposition"] == 'attachment; filename="samples-seed2-n4.png"'
    assert response.content == client.get("/api/samples?n=4&seed=2").content
    assert "content-disposition" not in client.get("/api/samples?n=4&seed=2").headers


def test_model_description_is_plain_data_without_paths(client, tiny_run):
    model = client.get("/api/model").json()
    assert model["model"] == "dcgan" and model["z_dim"] == 100 and model["num_classes"] == 0
    assert model["image_shape"] == [1, 28, 28] and model["step"] == 6
    assert model["run"] == tiny_run("dcgan").name and model["max_n"] == 36 and model["max_seed"] == MAX_SEED
    assert not any("/" in str(value) for value in model.values())


def test_an_exported_folder_is_served_under_its_own_name(tiny_run, tmp_path):
    pytest.importorskip("safetensors")
    from ganforge.export import export_generator

    export_generator(tiny_run("dcgan"), "hub", tmp_path / "my-gan")
    with TestClient(create_app(tmp_path / "my-gan")) as client:
        assert client.get("/api/model").json()["run"] == "my-gan"  # not "model.safetensors"


def test_the_page_is_served_with_its_controls_and_a_content_security_policy(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    for element in ('id="grid"', 'id="seed"', 'id="new-samples"', 'id="label"', 'id="walk"', 'id="download"'):
        assert element in response.text
    assert "default-src 'self'" in response.headers["content-security-policy"]


def test_nothing_else_is_served(client):
    for path in ("/docs", "/openapi.json", "/web/index.html", "/../pyproject.toml", "/api/samples/../../etc/passwd"):
        assert client.get(path).status_code == 404, path
    assert client.post("/api/samples").status_code == 405


def test_concurrent_requests_get_what_sequential_ones_get(client):
    seeds = list(range(12))
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda seed: client.get(f"/api/samples?n=9&seed={seed}").content, seeds))
    assert together == [client.get(f"/api/samples?n=9&seed={seed}").content for seed in seeds]


def test_a_loopback_server_answers_only_loopback_host_names(tiny_run):
    app = create_app(tiny_run("mlp"), allowed_hosts=ganforge.serve.LOOPBACK_HOSTS)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        assert client.get("/api/model").status_code == 200
        assert client.get("/api/model", headers={"host": "localhost:8000"}).status_code == 200
        assert client.get("/api/model", headers={"host": "attacker.example"}).status_code == 400


def class_levels(response, count: int) -> list[int]:
    """The gray level of each of ``count`` 8x8 images in a grid (2-pixel padding)."""
    grid = decode(response).convert("L")
    columns = (grid.width - 2) // 10
    return [grid.getpixel((2 + 10 * (i % columns) + 4, 2 + 10 * (i // columns) + 4)) for i in range(count)]


def test_a_conditional_model_draws_the_class_asked_for(conditional_app):
    with TestClient(conditional_app) as client:
        model = client.get("/api/model").json()
        assert model["num_classes"] == 3 and model["image_shape"] == [1, 8, 8]
        levels = {label: 60 * (label + 1) for label in range(3)}
        assert class_levels(client.get("/api/samples?n=4&seed=0&label=2"), 4) == [levels[2]] * 4
        assert class_levels(client.get("/api/walk?n=4&t=0.3&label=1"), 4) == [levels[1]] * 4
        # Without a label the classes take turns.
        assert class_levels(client.get("/api/samples?n=4&seed=0"), 4) == [levels[0], levels[1], levels[2], levels[0]]
        response = client.get("/api/samples?label=3")
        assert response.status_code == 422
        assert response.json()["detail"] == "label: must be below the model's 3 classes (got 3)"


@pytest.mark.slow
def test_ganforge_serve_listens_on_loopback_answers_and_stops_on_ctrl_c(tiny_run):
    command = [sys.executable, "-m", "ganforge", "serve", str(tiny_run("mlp")), "--port", "0", "--threads", "1"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert line.startswith("ganforge: serving run at http://127.0.0.1:"), line
        url = line.split(" at ")[1].split()[0]
        with urllib.request.urlopen(url + "api/samples?n=4&seed=1", timeout=30) as response:
            assert response.status == 200 and response.read().startswith(b"\x89PNG")
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(url + "api/samples?n=0", timeout=30)
        assert error.value.code == 422 and b"greater than or equal to 1" in error.value.read()
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert "server stopped" in out and "Traceback" not in err


def test_a_conditional_dcgan_draws_each_class_as_ganforge_generate_does(tiny_run, tmp_path):
    run = tiny_run("dcgan", "--conditional")
    with TestClient(create_app(run)) as client:
        assert client.get("/api/model").json()["num_classes"] == 10
        seven = client.get("/api/samples?n=12&seed=0&label=7")
        assert decode(seven).size == (2 + 10 * 30, 2 + 2 * 30)  # one column per class, as generate lays it out
        generate(run, n=12, seed=0, out=tmp_path / "seven.png", device="cpu", labels=7)
        assert seven.content == (tmp_path / "seven.png").read_bytes()
        assert client.get("/api/samples?n=12&seed=0&label=3").content != seven.content
        assert client.get("/api/walk?n=12&seed_a=0&t=0&label=7").content == seven.content
        response = client.get("/api/samples?label=10")
        assert response.status_code == 422
        assert response.json()["detail"] == "label: must be below the model's 10 classes (got 10)"


def test_the_listener_is_tcp_so_that_responses_are_not_held_back_by_nagle():
    listener = ganforge.serve.open_listener("127.0.0.1", 0)
    try:
        # asyncio sets TCP_NODELAY on accepted connections only when the listening socket says it is TCP.
        assert listener.proto == socket.IPPROTO_TCP and listener.getsockname()[1] > 0
    finally:
        listener.close()


def seconds_until_closed(client: socket.socket, start: float, limit: float, dribble: bool) -> float:
    """Seconds from ``start`` until the server closes ``client``, which sends a header byte every 0.1 s if ``dribble``.

    Fails if the server answers instead, or keeps the connection open ``limit`` seconds.
    """
    client.settimeout(0.1)
    while time.monotonic() - start < limit:
        try:
            if dribble:
                client.sendall(b"x")  # one more byte of a header value that never ends
            answer = client.recv(1024)
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
        assert answer == b"", f"the server answered {answer[:60]!r} instead of closing the connection"
        return time.monotonic() - start
    pytest.fail(f"the server kept the connection open for {limit} s")


def is_open(client: socket.socket) -> bool:
    """Whether the server has neither closed nor answered ``client`` yet."""
    client.setblocking(False)
    try:
        client.recv(1)
    except BlockingIOError:
        return True
    except ConnectionResetError:
        return False
    finally:
        client.setblocking(True)
    return False


@pytest.mark.parametrize("dribble", [True, False], ids=["sends-its-head-a-byte-at-a-time", "sends-nothing"])
def test_a_client_slow_to_send_its_request_head_is_dropped_while_others_are_served(
    tiny_run, server_thread, monkeypatch, dribble
):
    monkeypatch.setattr(ganforge.serve, "HEADER_TIMEOUT", 1.5)
    with server_thread(create_app(tiny_run("mlp"))) as server:
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as slow:
            if dribble:
                slow.sendall(b"GET /api/model HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            with urllib.request.urlopen(server.url + "api/model", timeout=10) as response:
                assert response.status == 200 and response.read().startswith(b"{")
            assert is_open(slow), "the slow client was dropped before its time was up"
            closed_after = seconds_until_closed(slow, start, limit=10, dribble=dribble)
        assert 1.5 * 0.9 <= closed_after < 1.5 + 2, closed_after
        with urllib.request.urlopen(server.url + "api/model", timeout=10) as response:
            assert response.status == 200


def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout(tiny_run, server_thread, monkeypatch):
    monkeypatch.setattr(ganforge.serve, "KEEP_ALIVE_TIMEOUT", 0.5)
    with server_thread(create_app(tiny_run("mlp"))) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            sockets = []
            for _ in range(2):
                connection.request("GET", "/api/model")
                response = connection.getresponse()
                assert response.status == 200 and response.read().startswith(b"{")
                sockets.append(connection.sock)
            kept = sockets[0]
            assert kept is not None and sockets[1] is kept  # the second request went over the same connection
            closed_after = seconds_until_closed(kept, time.monotonic(), limit=10, dribble=False)
        finally:
            connection.close()
    # Well before HEADER_TIMEOUT (10 s): the keep-alive timeout closed it, not the header timeout.
    assert 0.5 * 0.9 <= closed_after < 0.5 + 2 < ganforge.serve.HEADER_TIMEOUT, closed_after


def test_a_request_beyond_max_connections_gets_503_until_one_closes(tiny_run, server_thread, monkeypatch):
    monkeypatch.setattr(ganforge.serve, "MAX_CONNECTIONS", 3)  # counting the connection that asks

    def get(connection: http.client.HTTPConnection) -> int:
        connection.request("GET", "/api/model")
        response = connection.getresponse()
        response.read()
        return response.status

    def get_once(port: int) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            return get(connection)
        finally:
            connection.close()

    with server_thread(create_app(tiny_run("mlp"))) as server:
        kept = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=10) for _ in range(2)]
        try:
            assert [get(connection) for connection in kept] == [200, 200]  # both stay open (keep-alive)
            assert get_once(server.port) == 503
            kept.pop().close()
            deadline = time.monotonic() + 5
            while (status := get_once(server.port)) == 503:
                assert time.monotonic() < deadline, "still 503 after a connection closed"
                time.sleep(0.05)
            assert status == 200
        finally:
            for connection in kept:
                connection.close()
