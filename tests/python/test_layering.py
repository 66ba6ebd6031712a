"""The layering check (scripts/checks/layering.py) finds a circle and lets a layered crate pass."""
import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("layering", ROOT / "scripts/checks/layering.py")
layering = importlib.util.module_from_spec(spec)
spec.loader.exec_module(layering)


def crate(tmp_path, files):
    src = tmp_path / "src"
    for name, text in files.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return layering.cycles(layering.edges(layering.modules(str(src))))


def test_a_circle_through_three_modules_is_found(tmp_path):
    found = crate(
        tmp_path,
        {
            "lib.rs": "pub mod a; pub mod b; pub mod c;",
            "a.rs": "use crate::b::X;",
            "b.rs": "pub fn x() { crate::c::y() }",
            "c.rs": "use crate::{a::Z, other};",
        },
    )
    assert found == [[("a",), ("b",), ("c",)]]


def test_layers_and_test_modules_pass(tmp_path):
    found = crate(
        tmp_path,
        {
            "lib.rs": "pub mod view; pub mod handlers;",
            "view.rs": "pub struct V;\n#[cfg(test)]\nmod tests { use crate::handlers::H; }\n",
            "handlers.rs": "use crate::view::V; // crate::handlers in a comment\n",
        },
    )
    assert found == []


def test_a_circle_between_files_of_a_folder_module(tmp_path):
    found = crate(
        tmp_path,
        {
            "lib.rs": "pub mod contacts;",
            "contacts/mod.rs": "pub mod query; pub mod view;",
            "contacts/query.rs": "use super::view::contact;",
            "contacts/view.rs": "use super::query::by_id;",
        },
    )
    assert found == [[("contacts", "query"), ("contacts", "view")]]
