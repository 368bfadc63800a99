"""English names of China's provinces and a pinyin romaniser for cities and counties."""

from __future__ import annotations

import re

from pypinyin import Style, lazy_pinyin

PROVINCE_EN = {
    110000: "Beijing",
    120000: "Tianjin",
    130000: "Hebei",
    140000: "Shanxi",
    150000: "Inner Mongolia",
    210000: "Liaoning",
    220000: "Jilin",
    230000: "Heilongjiang",
    310000: "Shanghai",
    320000: "Jiangsu",
    330000: "Zhejiang",
    340000: "Anhui",
    350000: "Fujian",
    360000: "Jiangxi",
    370000: "Shandong",
    410000: "Henan",
    420000: "Hubei",
    430000: "Hunan",
    440000: "Guangdong",
    450000: "Guangxi",
    460000: "Hainan",
    500000: "Chongqing",
    510000: "Sichuan",
    520000: "Guizhou",
    530000: "Yunnan",
    540000: "Tibet",
    610000: "Shaanxi",
    620000: "Gansu",
    630000: "Qinghai",
    640000: "Ningxia",
    650000: "Xinjiang",
    710000: "Taiwan",
    810000: "Hong Kong",
    820000: "Macau",
}

# Administrative suffixes dropped before romanising ("东城区" -> "Dongcheng").
_SUFFIX = re.compile(
    r"(特别行政区|维吾尔自治区|壮族自治区|回族自治区|自治区|自治州|自治县|自治旗|"
    r"地区|林区|特区|新区|省|市|区|县|旗|盟)$"
)


def romanise(name_zh: str) -> str:
    """Pinyin of a Chinese place name without its administrative suffix, in title case."""
    core = _SUFFIX.sub("", name_zh.strip()) or name_zh.strip()
    syllables = lazy_pinyin(core, style=Style.NORMAL, errors="ignore")
    return "".join(syllables).capitalize()


def province_name_en(adcode: int, name_zh: str) -> str:
    return PROVINCE_EN.get(adcode) or romanise(name_zh)
