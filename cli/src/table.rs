//! Aligned columns measured in terminal cells, so that long values and CJK text (two cells a
//! character) keep the columns straight.

use unicode_width::UnicodeWidthStr as _;

pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Table {
            rows: vec![headers.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Every row, columns padded to the widest cell plus two spaces; the last column unpadded.
    /// Line breaks inside a cell become spaces (one record, one line).
    pub fn render(&self) -> String {
        let clean = |s: &str| s.replace(['\n', '\r', '\t'], " ");
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(clean(cell).width());
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                let cell = clean(cell);
                line.push_str(&cell);
                if i + 1 < row.len() {
                    line.push_str(&" ".repeat(widths[i] - cell.width() + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_with_long_and_cjk_text() {
        let mut t = Table::new(&["CODE", "TITLE", "中文"]);
        t.row(vec![
            "LOGO_UNCLEAR".into(),
            "The logo is unclear".into(),
            "标志不清晰".into(),
        ]);
        t.row(vec!["X".into(), "网站不是英文".into(), "-".into()]);
        let out = t.render();
        let lines: Vec<_> = out.lines().collect();
        // The third column starts at the same display column on every line.
        let starts: Vec<usize> = lines
            .iter()
            .zip(["中文", "标志不清晰", "-"])
            .map(|(line, third)| line[..line.rfind(third).unwrap()].width())
            .collect();
        assert_eq!(starts, [35, 35, 35], "{out}");
        assert!(lines.iter().all(|l| !l.ends_with(' ')));
    }
}
