"""Every sentence a kiosk screen shows, in both languages, and how money
and provisional numbers are written.
"""

from __future__ import annotations

import re

from restobox.contract import Words

# =========================================================================
# Texts: every sentence a screen shows, in both languages
# =========================================================================

T: dict[str, Words] = {
    "attract.title": Words("欢迎光临", "Welcome"),
    "attract.touch": Words("点击屏幕开始点餐", "Touch to start your order"),
    "language.title": Words("请选择语言", "Choose your language"),
    "lang.zh": Words("中文", "中文"),
    "lang.en": Words("English", "English"),
    "service.title": Words("在这里吃还是带走？", "Eat here or take away?"),
    "service.dine_in": Words("堂食", "Eat here"),
    "service.takeaway": Words("外带", "Take away"),
    "service.table": Words("请输入桌号（桌上的号码牌）", "Enter your table number (on the table sign)"),
    "service.delete": Words("删除", "Delete"),
    "service.table_from_link": Words("桌号已从二维码读取", "Table number from the QR code"),
    "menu.title": Words("菜单", "Menu"),
    "menu.cart": Words("购物车", "Cart"),
    "menu.added": Words("已加入购物车", "Added to your cart"),
    "sold_out": Words("已售罄", "Sold out"),
    "item.add": Words("加入购物车", "Add to cart"),
    "item.update": Words("更新", "Update"),
    "item.qty": Words("数量", "Quantity"),
    "item.allergens": Words("过敏原", "Allergens"),
    "cart.title": Words("你的订单", "Your order"),
    "cart.empty": Words("购物车是空的", "Your cart is empty"),
    "cart.subtotal": Words("小计", "Subtotal"),
    "cart.tax_incl": Words("其中税额", "Incl. VAT"),
    "cart.tax": Words("税额", "VAT"),
    "cart.total": Words("合计", "Total"),
    "cart.checkout": Words("去付款", "Go to payment"),
    "cart.more": Words("继续点餐", "Add more"),
    "cart.blocked": Words("购物车里有菜品需要你处理，处理后才能付款。",
                          "Something in your cart needs your choice before you can pay."),
    "cart.remove": Words("删除", "Remove"),
    "cart.replace": Words("换一道", "Choose another"),
    "cart.edit": Words("修改选项", "Change options"),
    "pay.title": Words("付款", "Payment"),
    "pay.choose": Words("请选择付款方式", "How would you like to pay?"),
    "pay.card": Words("刷卡", "Card"),
    "pay.qr": Words("扫码支付", "QR code"),
    "pay.counter": Words("到柜台付款", "Pay at the counter"),
    "pay.submitting": Words("正在下单，请稍候……", "Placing your order, one moment…"),
    "pay.retry_submit": Words("再试一次", "Try again"),
    "confirm.title": Words("下单成功！", "Thank you! Your order is in."),
    "confirm.number": Words("取餐号", "Your number"),
    "confirm.provisional": Words("临时号码", "Provisional number"),
    "confirm.provisional_note": Words(
        "门店网络暂时中断：订单已保存在本机，网络恢复后会自动送到厨房。请保留小票，取餐时出示此号码。",
        "The store network is down for a moment: your order is saved on this kiosk and goes to the "
        "kitchen as soon as it is back. Keep your receipt and show this number when you collect.",
    ),
    "confirm.wait": Words("请留意取餐屏幕上的号码。", "Watch for your number on the pickup screen."),
    "confirm.paid": Words("已付款", "Paid"),
    "confirm.unpaid": Words("请到柜台付款，小票上注明“未付款”。",
                            "Please pay at the counter; your receipt says UNPAID."),
    "confirm.check": Words("付款待核对：请到柜台，店员会为你核对是否已扣款。",
                           "Payment to be checked: please go to the counter, staff will check whether you were charged."),
    "confirm.done": Words("完成", "Done"),
    "help.title": Words("请联系店员", "Please ask a member of staff"),
    "help.done": Words("店员已处理", "Staff has helped"),
    "still.title": Words("还在吗？", "Are you still there?"),
    "still.text": Words("{s} 秒后将重新开始。", "The order will start over in {s} seconds."),
    "still.yes": Words("我还在", "I'm still here"),
    "still.no": Words("重新开始", "Start over"),
    "member.title": Words("会员积分", "Loyalty points"),
    "member.prompt": Words("输入手机号，积分可抵现金（可跳过）", "Enter your mobile number to earn and use points (optional)"),
    "member.ok": Words("确定", "OK"),
    "member.skip": Words("跳过", "Skip"),
    "member.checking": Words("正在查询积分……", "Looking up your points…"),
    "member.balance": Words("会员 {member}：积分 {balance}", "Member {member}: {balance} points"),
    "member.redeem": Words("用 {points} 积分抵 {amount}", "Use {points} points: {amount} off"),
    "member.redeeming": Words("已用 {points} 积分抵 {amount}（点此取消）", "Using {points} points: {amount} off (tap to undo)"),
    "member.too_few": Words("积分满 {min} 可用于抵扣。", "Points can be used from {min} points."),
    "member.continue": Words("去付款", "Go to payment"),
    "member.change": Words("换号码", "Change number"),
    "member.offline": Words(
        "门店网络暂时中断：本单积分会在订单送达门店后计入，现在不能使用积分。",
        "The store network is down for a moment: this order's points are added once it reaches the store; "
        "points cannot be used right now."),
    "member.earn": Words("本单可得约 {points} 积分。", "This order earns about {points} points."),
    "member.bad_phone": Words("手机号码不正确：请输入 11 位手机号（1 开头）。",
                              "That number is not valid: please enter your 11-digit mobile number (starting with 1)."),
    "confirm.points": Words("会员 {member}：本单积分 +{earned}，余额 {balance}", "Member {member}: +{earned} points, balance {balance}"),
    "confirm.points_later": Words("会员 {member}：积分将在订单送达门店后计入", "Member {member}: points are added when the order reaches the store"),
    "back": Words("返回", "Back"),
    "next": Words("下一步", "Next"),
    "cancel_order": Words("取消订单", "Cancel order"),
    "a11y.large_text": Words("大字", "Large text"),
    "a11y.high_contrast": Words("高对比度", "High contrast"),
    "a11y.reach": Words("低位操作", "Easy reach"),
    "price_changed": Words("价格有变动，请查看新的价格。", "Prices have changed; please check the new prices."),
    "upsell.drink": Words("来一杯{zh}吗？", "Add a drink? {en}"),
}

# How a refusal of the hub is explained, and what the diner can do about it.
FORWARD: dict[str, Words] = {
    "price_changed": Words("购物车里已是新的价格，请确认后再付款。",
                           "Your cart shows the new prices; check them and pay again."),
    "unavailable": Words("请删除它，或换一道菜。", "Remove it, or choose something else."),
    "fix_cart": Words("请在购物车里修改后再付款。", "Please change your cart and pay again."),
    "retry": Words("请再试一次；如果还不行，请到柜台点餐。", "Please try again; if it still fails, order at the counter."),
}

# The hub refused the points part: back to the phone screen.
LOYALTY_REASONS = frozenset({"phone_invalid", "points_insufficient", "points_not_allowed", "loyalty_disabled"})

CART_REASONS = frozenset({
    "price_mismatch", "item_unavailable", "modifier_unavailable", "unknown_item", "unknown_modifier",
    "modifier_not_allowed", "modifier_missing", "modifier_too_many", "modifier_duplicate", "bad_quantity",
    "empty_order", "too_many_lines", "table_required", "payment_mismatch",
})

ALLERGEN_NAMES: dict[str, Words] = {
    "celery": Words("芹菜", "celery"), "gluten": Words("麸质", "gluten"),
    "crustaceans": Words("甲壳类", "crustaceans"), "egg": Words("蛋", "egg"), "fish": Words("鱼", "fish"),
    "lupin": Words("羽扇豆", "lupin"), "milk": Words("奶", "milk"), "molluscs": Words("软体动物", "molluscs"),
    "mustard": Words("芥末", "mustard"), "peanut": Words("花生", "peanut"), "sesame": Words("芝麻", "sesame"),
    "soy": Words("大豆", "soy"), "sulphites": Words("亚硫酸盐", "sulphites"),
    "tree-nut": Words("坚果", "tree nuts"),
}


def money(fen: int) -> str:
    """``3200`` -> ``"¥32.00"``; ``-100`` -> ``"-¥1.00"``."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}¥{fen // 100}.{fen % 100:02d}"


def delta_text(fen: int) -> str:
    """A modifier's price change: ``"+¥2.00"``, ``"-¥1.00"``, ``""`` for none."""
    if fen == 0:
        return ""
    return f"+{money(fen)}" if fen > 0 else money(fen)


def provisional_number(device: str, counter: int, prefix: str = "K") -> str:
    """The number shown while offline: ``("kiosk-1", 7)`` -> ``"K1-007"``.

    The tag comes from the device id's last digits (``prefix`` + them; the
    counter's receipts use ``C``, so kiosk-1 and counter-1 never share a
    number), else its first letters; the counter is the device's own, kept
    in its database.
    """
    m = re.search(r"(\d+)$", device)
    tag = f"{prefix}{m.group(1)[-3:]}" if m else re.sub(r"[^a-z0-9]", "", device)[:4].upper() or prefix
    return f"{tag}-{counter % 1000:03d}"


_UNKNOWN_ONLY_COUNTER = Words(
    "还不能确认你是否已经付款，所以不能再次付款，也不能取消订单。请再查一次，或到柜台付款。",
    "We cannot yet tell whether you were charged, so paying again or cancelling is not possible. "
    "Check again, or pay at the counter.",
)
