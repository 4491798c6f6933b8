use super::*;
use crate::model::*;

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn opcodes_like_difflib() {
    let a = lines(&["a", "b", "c", "d"]);
    let b = lines(&["a", "x", "c", "d", "e"]);
    let ops: Vec<(Tag, usize, usize, usize, usize)> = opcodes(&a, &b)
        .into_iter()
        .map(|o| (o.tag, o.a.start, o.a.end, o.b.start, o.b.end))
        .collect();
    assert_eq!(
        ops,
        vec![
            (Tag::Equal, 0, 1, 0, 1),
            (Tag::Replace, 1, 2, 1, 2),
            (Tag::Equal, 2, 4, 2, 4),
            (Tag::Insert, 4, 4, 4, 5),
        ]
    );
    assert!(opcodes(&[], &[]).is_empty());
    let ops = opcodes(&lines(&["x"]), &[]);
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].tag, Tag::Delete);
}

#[test]
fn splitlines_like_python() {
    assert_eq!(
        py_splitlines("a\nb\r\nc\rd\n"),
        lines(&["a", "b", "c", "d"])
    );
    assert!(py_splitlines("").is_empty());
    assert_eq!(py_splitlines("\n\n"), lines(&["", ""]));
    let s = ScriptOut {
        id: "t".into(),
        output: "one\ntwo".into(),
    };
    assert_eq!(s.lines(), lines(&["|  t: one", "|_ two"]));
}
