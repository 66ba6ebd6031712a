//! English detection, shared by the website check and the introduction check.
//!
//! The marketplace requires the seller's website to "support English" and the introduction to be
//! English. Statistical detection (whatlang trigrams) is good on prose but shaky on the short,
//! name-heavy text of a company page, so the decision combines three signals:
//!
//! 1. **Script.** If fewer than half of the letters are Latin, the text is not English, whatever
//!    the words (a Chinese page with an English menu stays Chinese).
//! 2. **English function words.** Real English prose is about one third function words ("the",
//!    "and", "of", "our", …). Latin-script text with at least [`MIN_STOPWORD_RATIO`] of its words
//!    in that list is English. This cheap rule decides most English texts; it also saves those
//!    full of brand names and jargon, which confuse trigram models (sometimes classified as
//!    Dutch or Latin).
//! 3. **whatlang.** Otherwise, it is English when whatlang says so.
//!
//! The model runs only for what the two rules leave open (and to name a non-English language),
//! so its cost (a fifth of identity-check's CPU per submission when it ran on every text) is not
//! paid for the usual English page or introduction.
//!
//! Texts shorter than [`SHORT_TEXT_LETTERS`] letters are too short for any statistics: they are
//! accepted as English when all their letters are ASCII Latin (a product name like "CloudSync Pro").

/// Letters below which a text counts as "short" and the ASCII-Latin rule decides.
pub const SHORT_TEXT_LETTERS: usize = 20;

/// Share of English function words above which Latin text is taken as English.
pub const MIN_STOPWORD_RATIO: f64 = 0.15;

/// Only this many characters are analysed; detection on more text does not change the answer but
/// costs time (website bodies can be up to 1 MiB).
pub const MAX_ANALYSED_CHARS: usize = 20_000;

/// The outcome of language detection.
#[derive(Debug, Clone, PartialEq)]
pub struct LanguageGuess {
    /// Detected language: ISO 639-1 where one exists (`"en"`, `"zh"`), ISO 639-3 otherwise
    /// (`"cmn"` is reported as `"zh"`). `None` when no language could be detected (no letters) or
    /// when the short-text rule decided.
    pub lang: Option<String>,
    /// Whether the text is accepted as English.
    pub english: bool,
    /// whatlang's confidence in `lang`, 0.0..=1.0; 0.0 when a rule rather than detection decided.
    pub confidence: f64,
}

/// Decide whether `text` (already visible text, not markup) is English. See the module docs.
pub fn is_english_text(text: &str) -> LanguageGuess {
    let text = truncate_chars(text, MAX_ANALYSED_CHARS);
    let mut letters = 0usize;
    let mut latin = 0usize;
    let mut ascii = 0usize;
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        if c.is_ascii_alphabetic() {
            ascii += 1;
            latin += 1;
        } else if is_latin_letter(c) {
            latin += 1;
        }
    }

    if letters == 0 {
        return LanguageGuess {
            lang: None,
            english: false,
            confidence: 0.0,
        };
    }
    if letters < SHORT_TEXT_LETTERS {
        return LanguageGuess {
            lang: None,
            english: ascii == letters,
            confidence: 0.0,
        };
    }

    // Mostly non-Latin letters: not English, whatever the Latin remainder says. whatlang runs
    // only to name the language for the finding.
    if latin * 2 < letters {
        let (lang, confidence) = detect(text);
        return LanguageGuess {
            lang,
            english: false,
            confidence,
        };
    }
    // The cheap rule first: English prose is about a third function words, so most English
    // pages and introductions are decided here without the trigram model.
    if stopword_ratio(text) >= MIN_STOPWORD_RATIO {
        return LanguageGuess {
            lang: Some("en".to_owned()),
            english: true,
            confidence: 0.0,
        };
    }
    let (lang, confidence) = detect(text);
    LanguageGuess {
        english: lang.as_deref() == Some("en"),
        lang,
        confidence,
    }
}

/// whatlang's language (as [`iso_code`]) and its confidence.
fn detect(text: &str) -> (Option<String>, f64) {
    match whatlang::detect(text) {
        Some(info) => (Some(iso_code(info.lang()).to_owned()), info.confidence()),
        None => (None, 0.0),
    }
}

/// True for BCP 47 / POSIX-ish language tags whose primary language is English: `"en"`,
/// `"en-US"`, `"EN_gb"`, `"eng"`, `"en-Latn-US"`. Surrounding whitespace and quotes and a `;q=`
/// weight are ignored.
pub fn language_tag_is_english(tag: &str) -> bool {
    let tag = tag.split(';').next().unwrap_or("");
    let tag = tag.trim().trim_matches(|c| c == '"' || c == '\'').trim();
    let primary = tag.split(['-', '_']).next().unwrap_or("");
    primary.eq_ignore_ascii_case("en") || primary.eq_ignore_ascii_case("eng")
}

/// True if any tag of a comma-separated list (a `Content-Language` header value, a `<meta>`
/// content) is English.
pub fn language_list_has_english(list: &str) -> bool {
    list.split(',').any(language_tag_is_english)
}

fn truncate_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((index, _)) => &text[..index],
        None => text,
    }
}

/// Latin letters beyond ASCII (accented letters of European languages, Vietnamese, …).
fn is_latin_letter(c: char) -> bool {
    matches!(c,
        '\u{00C0}'..='\u{024F}' // Latin-1 Supplement letters, Latin Extended-A and -B
        | '\u{1E00}'..='\u{1EFF}' // Latin Extended Additional
        | '\u{2C60}'..='\u{2C7F}'
        | '\u{A720}'..='\u{A7FF}'
        | '\u{FF21}'..='\u{FF3A}' // full-width A-Z
        | '\u{FF41}'..='\u{FF5A}') // full-width a-z
}

/// The most frequent English function words. Chosen to be rare as whole words in other Latin
/// languages (no "a", "in", "de", "die", "en").
const STOPWORDS: &[&str] = &[
    "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been", "but",
    "by", "can", "could", "do", "each", "for", "from", "has", "have", "help", "helps", "how", "if",
    "into", "is", "it", "its", "more", "most", "not", "of", "on", "one", "or", "other", "our",
    "over", "that", "the", "their", "them", "these", "they", "this", "through", "to", "us", "we",
    "what", "when", "which", "who", "will", "with", "would", "you", "your",
];

fn stopword_ratio(text: &str) -> f64 {
    let mut words = 0usize;
    let mut hits = 0usize;
    for word in text
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
    {
        words += 1;
        let lower = word.to_ascii_lowercase();
        if STOPWORDS.binary_search(&lower.as_str()).is_ok() {
            hits += 1;
        }
    }
    if words == 0 {
        0.0
    } else {
        hits as f64 / words as f64
    }
}

/// ISO 639-1 for whatlang's languages where one exists, its ISO 639-3 code otherwise.
fn iso_code(lang: whatlang::Lang) -> &'static str {
    use whatlang::Lang::*;
    match lang {
        Epo => "eo",
        Eng => "en",
        Rus => "ru",
        Cmn => "zh",
        Spa => "es",
        Por => "pt",
        Ita => "it",
        Ben => "bn",
        Fra => "fr",
        Deu => "de",
        Ukr => "uk",
        Kat => "ka",
        Ara => "ar",
        Hin => "hi",
        Jpn => "ja",
        Heb => "he",
        Yid => "yi",
        Pol => "pl",
        Amh => "am",
        Jav => "jv",
        Kor => "ko",
        Nob => "nb",
        Dan => "da",
        Swe => "sv",
        Fin => "fi",
        Tur => "tr",
        Nld => "nl",
        Hun => "hu",
        Ces => "cs",
        Ell => "el",
        Bul => "bg",
        Bel => "be",
        Mar => "mr",
        Kan => "kn",
        Ron => "ro",
        Slv => "sl",
        Hrv => "hr",
        Srp => "sr",
        Mkd => "mk",
        Lit => "lt",
        Lav => "lv",
        Est => "et",
        Tam => "ta",
        Vie => "vi",
        Urd => "ur",
        Tha => "th",
        Guj => "gu",
        Uzb => "uz",
        Pan => "pa",
        Aze => "az",
        Ind => "id",
        Tel => "te",
        Pes => "fa",
        Mal => "ml",
        Ori => "or",
        Mya => "my",
        Nep => "ne",
        Sin => "si",
        Khm => "km",
        Tuk => "tk",
        Aka => "ak",
        Zul => "zu",
        Sna => "sn",
        Afr => "af",
        Lat => "la",
        Slk => "sk",
        Cat => "ca",
        Tgl => "tl",
        Hye => "hy",
        #[allow(unreachable_patterns)]
        other => other.code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopwords_are_sorted_for_binary_search() {
        let mut sorted = STOPWORDS.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, STOPWORDS);
    }

    #[test]
    fn english_prose_is_english() {
        let g = is_english_text(
            "We build cloud backup software for small and medium businesses. Our product keeps your data safe and helps you recover from outages in minutes.",
        );
        assert!(g.english, "{g:?}");
        assert_eq!(g.lang.as_deref(), Some("en"));
        assert_eq!(
            g.confidence, 0.0,
            "decided by the function-word rule, not the model"
        );
    }

    #[test]
    fn brand_heavy_english_is_english() {
        let g = is_english_text(
            "KooSync Pro for Huawei Cloud OBS: the backup of your ECS and RDS data, with AES-256 and the SLA you need.",
        );
        assert!(g.english, "{g:?}");
    }

    #[test]
    fn chinese_is_not_english() {
        let g = is_english_text(
            "我们是一家专注于云计算和大数据服务的高科技企业，为客户提供安全可靠的解决方案。",
        );
        assert!(!g.english);
        assert_eq!(g.lang.as_deref(), Some("zh"));
    }

    #[test]
    fn chinese_with_english_menu_is_not_english() {
        let g = is_english_text(
            "Home About Contact 我们是一家专注于云计算和大数据服务的高科技企业，为客户提供安全可靠的解决方案，欢迎联系我们。",
        );
        assert!(!g.english, "{g:?}");
    }

    #[test]
    fn german_and_french_are_not_english() {
        let de = is_english_text(
            "Wir entwickeln Software für die Datensicherung in der Cloud und unterstützen unsere Kunden bei der Migration.",
        );
        assert!(!de.english, "{de:?}");
        assert_eq!(de.lang.as_deref(), Some("de"));
        let fr = is_english_text(
            "Nous développons des logiciels de sauvegarde pour les petites et moyennes entreprises françaises.",
        );
        assert!(!fr.english, "{fr:?}");
    }

    #[test]
    fn short_texts() {
        assert!(is_english_text("CloudSync Pro").english);
        assert!(!is_english_text("云同步").english);
        assert!(!is_english_text("").english);
        assert!(!is_english_text("12345 !!!").english);
    }

    #[test]
    fn language_tags() {
        for tag in [
            "en",
            "en-US",
            "EN_gb",
            "eng",
            " en-Latn-US ",
            "\"en\"",
            "en;q=0.8",
        ] {
            assert!(language_tag_is_english(tag), "{tag}");
        }
        for tag in ["", "zh", "zh-CN", "de-DE", "enx", "e", "english-ish"] {
            assert!(!language_tag_is_english(tag), "{tag}");
        }
        assert!(language_list_has_english("zh-CN, en-US"));
        assert!(!language_list_has_english("zh-CN, ja"));
    }
}
