"""A built-in, brand-agnostic Chinese customer-service lexicon: concept groups for query and entry expansion.

Customers and ops name the same thing differently (跑腿费 / 配送费, 撤回 / 取消, 活人 / 人工). Each group
below is one concept of general retail, food & beverage, e-commerce or maternal & baby service; any text
containing one of a group's surfaces gets the group's concept feature, on both the FAQ side and the message
side, so the two meet even when they share no word. The data is general vocabulary that holds for any
brand in these trades: no brand, product or store names, nothing keyed to a particular library.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache

__all__ = [
    "ACKNOWLEDGEMENTS",
    "CONCEPTS",
    "ELSEWHERE",
    "QUESTION_CUES",
    "QUESTION_TYPES",
    "ConceptMatcher",
    "default_matcher",
    "is_acknowledgement",
    "mentions_elsewhere",
]

# Concept name -> surfaces. Surfaces are matched as substrings of normalised text (lower case, half
# width, 啥 -> 什么 and other colloquial spellings already replaced), so single characters are avoided
# unless they are unambiguous in customer-service chat.
CONCEPTS: dict[str, tuple[str, ...]] = {
    # ---------------------------------------------------------------- fees, delivery and logistics
    "配送费": (
        "配送费",
        "运费",
        "邮费",
        "跑腿费",
        "快递费",
        "送货费",
        "外送费",
        "配送费用",
        "附加费",
    ),
    "起送": ("起送", "凑单", "起送价", "最低消费", "低消", "满多少", "满多少送"),
    "包邮": ("包邮", "免运费", "免邮", "免配送费", "不收运费", "免费配送", "免费送"),
    "配送": (
        "配送",
        "送货",
        "外送",
        "外卖",
        "送过来",
        "送到家",
        "送上门",
        "送货上门",
        "能送",
        "送不送",
        "送得到",
        "送不到",
        "送不了",
        "同城",
        "闪送",
        "跑腿",
        "骑手",
        "上门",
    ),
    "配送范围": (
        "配送范围",
        "超出范围",
        "送不到",
        "送不了",
        "多远",
        "公里",
        "距离",
    ),
    "送达时间": (
        "多久到",
        "多久能到",
        "多久送到",
        "几天到",
        "几天能到",
        "什么时候到",
        "多长时间到",
        "等多久",
        "要多久",
        "多久才能",
        "快不快",
        "来得及",
        "多快",
        "送达",
        "次日达",
        "当天到",
        "能到吗",
    ),
    "发货": (
        "发货",
        "寄出",
        "发出",
        "出库",
        "发快递",
        "什么快递",
        "哪家快递",
        "顺丰",
        "中通",
        "圆通",
        "韵达",
        "邮政",
    ),
    "物流查询": (
        "到哪了",
        "到哪里了",
        "物流",
        "快递单号",
        "查快递",
        "单号",
        "配送进度",
        "还没到",
        "没收到货",
    ),
    "少送漏送": (
        "少送",
        "漏送",
        "漏装",
        "少了",
        "少给",
        "没送来",
        "缺了",
        "少发",
        "漏发",
        "没有收到",
    ),
    "送错": ("送错", "拿错", "发错", "弄错", "给错", "不是我点的", "不是我买的"),
    "洒漏破损": (
        "洒了",
        "撒了",
        "漏了",
        "泼了",
        "漏液",
        "破损",
        "压坏",
        "瘪了",
        "摔坏",
        "碎了",
        "洒出来",
    ),
    # ---------------------------------------------------------------- orders
    "下单": (
        "下单",
        "点单",
        "订购",
        "拍下",
        "下的单",
        "点的单",
        "订单",
        "付了款",
        "付完款",
    ),
    "取消": ("取消", "撤回", "撤销", "撤单", "作废", "不要了", "不想要了", "退单", "点错了", "拍错", "下错"),
    "修改": (
        "修改",
        "更改",
        "改成",
        "换成",
        "改一下",
        "能改",
        "怎么改",
        "改吗",
        "改不",
        "填错",
        "写错",
        "改地址",
    ),
    "备注": ("备注", "加料", "加一份", "多加", "少冰", "去冰", "口味"),
    "预约": (
        "预约",
        "预订",
        "预定",
        "提前订",
        "提前下单",
        "提前点",
        "定时",
        "指定时间",
    ),
    "自提": (
        "自提",
        "自取",
        "到店取",
        "到店拿",
        "店里拿",
        "去哪拿",
        "来拿",
        "取餐",
        "取货",
        "取件",
        "提货",
    ),
    "通知": ("通知", "提醒", "短信", "消息推送"),
    # ---------------------------------------------------------------- refunds and after-sales
    "退款": ("退款", "退钱", "退费", "返款", "退回", "原路退回", "能退"),
    "到账": ("到账", "钱没到", "钱还没", "收到钱", "几个工作日", "工作日"),
    "退货": ("退货", "退掉", "退回去", "寄回", "无理由", "七天无理由", "7天无理由", "能退吗", "买错了"),
    "换货": (
        "换货",
        "换一个",
        "换个码",
        "换大一码",
        "换小一码",
        "换尺码",
        "调换",
        "换新",
        "买小了",
        "买大了",
    ),
    "质量问题": ("质量问题", "坏了", "有问题", "怪味", "变质", "发霉", "结块", "异物", "破了", "过期了"),
    "差价": ("差价", "降价", "价保", "保价", "补差"),
    "投诉": ("投诉", "差评", "态度差", "举报", "维权", "太差了"),
    # ---------------------------------------------------------------- invoices and payment
    "发票": ("发票", "开票", "专票", "普票", "报销", "抬头", "税号", "收据", "电子发票"),
    "支付方式": (
        "支付方式",
        "付款方式",
        "支付",
        "付款",
        "付钱",
        "支付宝",
        "微信支付",
        "云闪付",
        "信用卡",
        "花呗",
        "applepay",
        "apple pay",
        "现金",
        "刷卡",
        "银联",
        "货到付款",
        "分期",
        "银行卡",
    ),
    # ---------------------------------------------------------------- membership, points, coupons
    "会员": ("会员", "vip", "入会", "办卡", "开卡", "会员卡", "会员码"),
    "注册": ("注册", "加入", "开通", "成为会员", "办个会员", "入会", "授权手机号"),
    "会员等级": (
        "会员等级",
        "等级",
        "级别",
        "金卡",
        "银卡",
        "黑卡",
        "钻石卡",
        "白金卡",
        "升级",
        "降级",
        "掉级",
        "成长值",
    ),
    "积分": ("积分", "攒分", "积分商城", "兑换"),
    "过期清零": ("过期", "清零", "有效期", "失效", "到期"),
    "生日": ("生日", "过生", "周岁", "满月"),
    "新人": ("新人", "新客", "新用户", "首单", "第一次", "首次", "新会员", "刚注册"),
    "免费": ("免费", "白嫖", "不要钱", "不花钱", "不收费", "赠送", "送一"),
    "优惠券": ("优惠券", "券", "代金券", "满减券", "红包", "折扣券", "无门槛"),
    "叠加": ("叠加", "一起用", "同时用", "共用", "一起使用", "同时使用"),
    "折扣": (
        "优惠",
        "折扣",
        "打折",
        "便宜",
        "立减",
        "八折",
        "九折",
        "特价",
        "划算",
        "活动",
    ),
    "团购": ("团购", "美团", "大众点评", "点评", "抖音", "直播间", "口碑", "核销", "套餐"),
    "储值": ("储值", "充值", "余额", "储值卡", "卡里", "提现", "充多少"),
    # ---------------------------------------------------------------- stores
    "门店": ("门店", "店铺", "实体店", "线下店", "分店", "你们店", "你们家", "店里"),
    "地址": ("在哪", "哪里", "哪儿", "地址", "位置", "导航", "怎么走", "最近的", "附近"),
    "城市": (
        "北京",
        "上海",
        "广州",
        "深圳",
        "杭州",
        "苏州",
        "南京",
        "成都",
        "重庆",
        "武汉",
        "天津",
        "西安",
        "长沙",
        "郑州",
        "青岛",
        "厦门",
        "宁波",
        "无锡",
        "合肥",
        "济南",
        "沈阳",
        "大连",
        "昆明",
        "福州",
    ),
    "营业时间": (
        "营业时间",
        "几点开门",
        "几点关门",
        "几点关",
        "开门",
        "关门",
        "营业",
        "开到几点",
        "放假",
        "节假日",
        "国庆",
        "春节",
        "过年",
    ),
    "停车": ("停车", "车位"),
    "网络": ("wifi", "无线网", "上网", "wifi密码"),
    "充电": ("插座", "充电", "没电"),
    "宠物": ("宠物", "狗", "猫", "毛孩子", "带狗", "带猫"),
    "母婴室": ("母婴室", "哺乳室", "喂奶的地方", "换尿布"),
    "加盟": ("加盟", "代理", "开店合作", "招商", "合作"),
    "批量": ("批量", "大单", "团建", "一批", "整箱", "囤货", "多买", "企业", "下午茶"),
    # ---------------------------------------------------------------- products in general
    "库存": ("有货", "库存", "现货", "缺货", "补货", "卖完", "断货", "没货", "到货", "还有吗"),
    "保质期": (
        "保质期",
        "放多久",
        "放几天",
        "能放",
        "保存",
        "新鲜",
        "隔夜",
        "当天做",
        "现烤",
        "现做",
    ),
    "正品": ("正品", "真伪", "假货", "防伪", "溯源", "正不正", "真的假的", "水货"),
    "过敏": (
        "过敏",
        "过敏原",
        "坚果",
        "果仁",
        "花生",
        "麸质",
        "乳制品",
        "牛奶蛋白",
        "起疹子",
        "红疹",
    ),
    "甜度": ("甜度", "少糖", "半糖", "无糖", "糖浆", "太甜", "不加糖", "控糖", "代糖", "微糖"),
    "植物奶": ("植物奶", "燕麦奶", "椰奶", "豆奶", "换奶"),
    "咖啡因": ("咖啡因", "低因", "decaf"),
    "蛋糕": ("蛋糕", "6寸", "8寸", "祝福语"),
    "试用": ("试用", "小样", "试试", "体验装"),
    "自带杯": ("自带杯", "环保杯", "保温杯", "自己的杯子", "带杯子"),
    # ---------------------------------------------------------------- maternal & baby
    "孕期": ("孕妇", "怀孕", "孕期", "孕妈", "准妈妈", "备孕", "待产"),
    "纸尿裤": ("纸尿裤", "尿不湿", "尿片", "拉拉裤", "尿布"),
    "尺码": ("尺码", "码数", "多大码", "几码", "选码", "s码", "m码", "l码", "xl码"),
    "红屁屁": ("红屁屁", "屁屁红", "屁股红", "红屁股", "尿布疹", "护臀"),
    "月龄": ("几个月", "月龄", "多大", "几岁", "个月"),
    "辅食": ("辅食", "米粉", "果泥", "菜泥", "溶豆", "磨牙"),
    "喂养咨询": ("育儿顾问", "育婴顾问", "营养师", "咨询"),
    # ---------------------------------------------------------------- accounts and people
    "账号": ("手机号", "换绑", "账号", "登录", "绑定", "解绑"),
    "人工": ("人工", "真人", "活人", "客服", "人工客服", "转人工", "机器人", "找个人", "找人"),
    "小程序": ("小程序", "商城", "网上", "线上", "网店", "官网", "app"),
}

# Question-type cues: the kind of answer a message asks for. An entry whose questions ask the same kind
# of thing is a better match than one that merely shares the topic.
QUESTION_TYPES: dict[str, tuple[str, ...]] = {
    "问价": ("多少钱", "什么价", "价格", "价钱", "加钱", "收费", "收钱", "费用", "贵不贵", "几块", "要钱"),
    "问时长": ("多久", "几天", "多长时间", "什么时候", "几点", "几号", "哪天", "来得及"),
    "问地点": ("在哪", "哪里", "哪儿", "去哪", "哪家", "入口", "放哪"),
    "问方法": ("怎么", "如何", "怎样", "咋办", "怎么办", "操作", "步骤"),
    "问可否": ("能不能", "可不可以", "可以吗", "能吗", "行吗", "可以不", "能不", "行不"),
    "问区别": ("区别", "不一样", "哪个好", "有什么不同", "差别"),
}


# Messages that open with thanks or an acknowledgement and ask nothing are chat, whatever else they mention
# (谢谢 宝宝喝得很好): the customer is closing a topic, not opening one.
ACKNOWLEDGEMENTS = ("谢谢", "多谢", "感谢", "好的", "好滴", "收到", "知道了", "明白了", "ok", "嗯嗯", "辛苦")
QUESTION_CUES = (
    "吗",
    "么",
    "什么",
    "怎",
    "多少",
    "几",
    "哪",
    "能不能",
    "可以",
    "有没有",
    "是不是",
    "会不会",
    "要不要",
    "咋",
    "如何",
    "不能",
    "没有",
    "求",
)


# Another shop or platform: the customer asks about a purchase or programme this brand does not run, even
# when the words (积分, 退货) are the library's own.
ELSEWHERE = (
    "隔壁",
    "别家",
    "别的店",
    "其他店",
    "其他家",
    "别人家",
    "京东",
    "淘宝",
    "天猫",
    "拼多多",
    "唯品会",
    "苏宁",
)


def mentions_elsewhere(normalized: str) -> bool:
    """True when the message is about another shop or marketplace."""
    return any(word in normalized for word in ELSEWHERE)


def is_acknowledgement(normalized: str) -> bool:
    """True for thanks / acknowledgement messages that carry no question cue."""
    text = normalized.replace(" ", "")
    return text.startswith(ACKNOWLEDGEMENTS) and not any(cue in text for cue in QUESTION_CUES)


def _fold(text: str) -> str:
    """Width and case folding, as the normaliser does, so surfaces match normalised text."""
    return unicodedata.normalize("NFKC", text).lower()


class ConceptMatcher:
    """Finds every concept (and question type) whose surface occurs in a normalised text."""

    def __init__(self, groups: Iterable[tuple[str, Sequence[str]]]) -> None:
        """Compile {surface: concepts}; a surface may belong to several concepts."""
        table: dict[str, set[str]] = {}
        for name, surfaces in groups:
            for surface in surfaces:
                key = _fold(surface).replace(" ", "")
                if key:
                    table.setdefault(key, set()).add(name)
        self._table = {k: tuple(sorted(v)) for k, v in table.items()}
        self._lengths = tuple(sorted({len(k) for k in table}, reverse=True))
        self._firsts = frozenset(k[0] for k in table)

    def __call__(self, normalized: str) -> set[str]:
        """Names of the concepts present in the text (overlapping surfaces all count)."""
        return self.find(normalized)[0]

    def find(self, normalized: str) -> tuple[set[str], dict[str, tuple[str, ...]]]:
        """The concepts present in the text, and each surface found with the concepts it gave away."""
        found: set[str] = set()
        surfaces: dict[str, tuple[str, ...]] = {}
        text = normalized.replace(" ", "")
        table, firsts, n = self._table, self._firsts, len(text)
        for i, ch in enumerate(text):
            # Most positions start no surface at all: one set lookup skips them.
            if ch not in firsts:
                continue
            for length in self._lengths:
                if i + length <= n:
                    piece = text[i : i + length]
                    hit = table.get(piece)
                    if hit:
                        found.update(hit)
                        surfaces[piece] = hit
        return found, surfaces


@lru_cache(maxsize=1)
def default_matcher() -> ConceptMatcher:
    """The matcher over the built-in concepts and question types (question types prefixed with '?')."""
    groups = list(CONCEPTS.items()) + [("?" + name, s) for name, s in QUESTION_TYPES.items()]
    return ConceptMatcher(groups)
