"""The shoal command: help that teaches, and clear refusals of bad input (exit code 2, a message saying what to do)."""

from pathlib import Path

from typer.testing import CliRunner

from shoal.cli import cli

ROOT = Path(__file__).resolve().parents[1]
IMAGE = str(ROOT / "examples" / "image_pipeline.py")
runner = CliRunner()


def test_help_lists_the_commands_and_how_to_start():
    r = runner.invoke(cli, ["--help"], terminal_width=200)
    assert r.exit_code == 0
    text = " ".join(r.output.split())
    for word in ("serve", "status", "invoke", "demo", "shoal serve examples/image_pipeline.py"):
        assert word in text


def test_serve_refuses_a_plan_that_names_an_unknown_stage():
    r = runner.invoke(cli, ["serve", IMAGE, "--plan", "preprocess+nope,backbone,head"])
    assert r.exit_code == 2
    assert "nope" in r.output and "not a stage" in r.output


def test_serve_refuses_a_disconnected_group():
    r = runner.invoke(cli, ["serve", IMAGE, "--plan", "preprocess+head,backbone"])
    assert r.exit_code == 2
    assert "not connected" in r.output


def test_serve_refuses_a_missing_file():
    r = runner.invoke(cli, ["serve", "no/such/app.py"])
    assert r.exit_code == 2
    assert "no such file" in r.output


def test_status_says_what_to_do_when_no_server_runs():
    r = runner.invoke(cli, ["status", "--url", "http://127.0.0.1:9"])
    assert r.exit_code == 2
    assert "Is `shoal serve` running there?" in r.output
