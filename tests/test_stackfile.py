"""Stack files are read as the Pulumi CLI reads them, and refused with one line that names the place."""

import pytest

from offline import program, stackfile


def write(tmp_path, text, stack="t"):
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(text)
    return str(tmp_path)


def error(tmp_path, text):
    with pytest.raises(stackfile.StackFileError) as err:
        program.load_stack_config("t", write(tmp_path, text))
    message = str(err.value)
    assert "\n" not in message
    return message


def test_yes_no_on_off_are_strings_as_in_yaml_1_2(tmp_path):
    config, _ = program.load_stack_config(
        "t",
        write(
            tmp_path,
            (
                "config:\n  aws:region: us-east-1\n  cicd:tags:\n    backup: yes\n    owner: no\n    dr: on\n"
                "  cicd:protect: true\n"
            ),
        ),
    )
    assert config["cicd:tags"] == '{"backup": "yes", "owner": "no", "dr": "on"}'
    assert config["cicd:protect"] == "true"


def test_a_duplicate_key_is_an_error_naming_both_lines(tmp_path):
    message = error(tmp_path, "config:\n  aws:region: us-east-1\n  cicd:protect: true\n  cicd:protect: false\n")
    assert message.startswith("Pulumi.t.yaml:4:3: duplicate key 'cicd:protect' (first at line 3)")


def test_a_duplicate_key_inside_an_object_is_an_error_too(tmp_path):
    message = error(tmp_path, "config:\n  cicd:service:\n    cpu: 256\n    cpu: 512\n")
    assert "duplicate key 'cpu'" in message and message.startswith("Pulumi.t.yaml:4:")


def test_an_empty_stack_file_says_so(tmp_path):
    assert error(tmp_path, "").startswith("Pulumi.t.yaml is empty")
    assert "has no config: section" in error(tmp_path, "encryptionsalt: abc\n")


def test_an_unknown_namespace_suggests_the_right_one(tmp_path):
    message = error(tmp_path, "config:\n  aws:region: us-east-1\n  cidc:protect: true\n")
    assert "unknown namespace 'cidc'" in message and "did you mean cicd:protect?" in message


def test_a_key_without_namespace_is_refused(tmp_path):
    assert "did you mean cicd:protect?" in error(tmp_path, "config:\n  protect: true\n")


def test_a_syntax_error_names_line_and_column(tmp_path):
    message = error(tmp_path, "config:\n  aws:region: us-east-1\n  cicd:tags: {team: a\n")
    assert message.startswith("Pulumi.t.yaml:4:1:") or message.startswith("Pulumi.t.yaml:3:")


def test_a_missing_stack_file_names_it(tmp_path):
    with pytest.raises(stackfile.StackFileError) as err:
        program.load_stack_config("nope", str(tmp_path))
    assert str(err.value).startswith("no stack file Pulumi.nope.yaml")


def test_numbers_are_read_as_yaml_1_2_reads_them(tmp_path):
    from offline import stackfile

    (tmp_path / "Pulumi.n.yaml").write_text(
        "config:\n  aws:region: us-east-1\n  cicd:service:\n    name: '1:30'\n    containerPort: 010\n"
        "    cpu: 0o400\n  cicd:tags:\n    window: 1:30\n    ratio: 1.5e3\n"
    )
    values = stackfile.read(str(tmp_path / "Pulumi.n.yaml"))
    assert values["cicd:service"] == {"name": "1:30", "containerPort": 10, "cpu": 256}
    assert values["cicd:tags"] == {"window": "1:30", "ratio": 1500.0}
